"""Data sets: the on-disk format, its torch ``Dataset``, and the generators that build them."""

from dsvae.data.bouncing_ball import (
    POLYGON_32,
    make_bouncing_ball_dataset,
    simulate_bouncing_ball,
)
from dsvae.data.dataset import (
    DatasetWriter,
    SequenceDataset,
    SequenceSubset,
    load_dataset,
    prepare_frames,
    split_groups,
    split_indices,
    to_uint8_images,
    write_dataset,
)
from dsvae.data.sprites import (
    ACTION_NAMES,
    SpriteSheets,
    build_sprites,
    load_sheets,
    render_character,
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
    "load_dataset",
    "make_bouncing_ball_dataset",
    "prepare_frames",
    "simulate_bouncing_ball",
    "split_groups",
    "split_indices",
    "to_uint8_images",
    "write_dataset",
]
