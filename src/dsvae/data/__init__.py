"""Data sets: the on-disk format, its torch ``Dataset``, and the generators that build them.

``storage`` (the folder format, its writer and readers), ``folders`` (atomic folder
commits), ``dataset`` (``SequenceDataset``, ``SequenceSubset``), ``transforms`` (raw data
<-> model input), ``splits`` (train/validation), then one module per data set.
"""

from dsvae.data.bouncing_ball import (
    POLYGON_32,
    make_bouncing_ball_dataset,
    simulate_bouncing_ball,
)
from dsvae.data.dataset import SequenceDataset, SequenceSubset
from dsvae.data.splits import split_groups, split_indices
from dsvae.data.sprites import (
    ACTION_NAMES,
    SpriteSheets,
    build_sprites,
    load_sheets,
    render_character,
)
from dsvae.data.storage import DatasetWriter, write_dataset
from dsvae.data.transforms import (
    model_batches,
    model_frames,
    prepare_frames,
    require_same_frames,
    to_uint8_images,
)

__all__ = [
    "ACTION_NAMES",
    "SpriteSheets",
    "build_sprites",
    "load_sheets",
    "render_character",
    "POLYGON_32",
    "DatasetWriter",
    "SequenceDataset",
    "SequenceSubset",
    "make_bouncing_ball_dataset",
    "model_batches",
    "model_frames",
    "prepare_frames",
    "require_same_frames",
    "simulate_bouncing_ball",
    "split_groups",
    "split_indices",
    "to_uint8_images",
    "write_dataset",
]
