"""Which Sprites sequences a protocol scores: the test split, or a run's validation characters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dsvae.config import TrainConfig
from dsvae.data import SequenceDataset, SequenceSubset
from dsvae.errors import DataError


def _sprites_split(
    path: Path, labels: tuple[str, ...] = ("attributes", "action", "character")
) -> SequenceDataset:
    """The data set at ``path``, checked to have the Sprites ``labels``."""
    dataset = SequenceDataset(path)
    missing = [k for k in labels if k not in dataset.labels]
    if missing:
        raise DataError(
            f"{dataset.path} has no {missing[0]!r} labels: not a Sprites split; build one with "
            "`dsvae data sprites --sheets DIR --out DIR`"
        )
    return dataset


def validation_split(
    data_dir: str | Path, cfg: TrainConfig, *, characters: int | None = None
) -> SequenceSubset:
    """The validation sequences that a run with training config ``cfg`` held out.

    ``data_dir`` is a Sprites folder (its ``train/`` is used) or its training split. The
    split is the one training made (:func:`dsvae.train.module.train_val_indices`); with
    ``characters`` only that many of its characters (the lowest ids) are kept, all 9
    sequences of each, in the split's order.
    """
    from dsvae.train.module import train_val_indices

    data_dir = Path(data_dir)
    dataset = _sprites_split(data_dir / "train" if (data_dir / "train").is_dir() else data_dir)
    _, val = train_val_indices(dataset, cfg)
    if not len(val):
        raise DataError(
            "the run held out no validation sequences (train.val_fraction is 0): there is "
            "nothing to score without looking at the test split"
        )
    if characters is not None:
        if characters < 1:
            raise DataError(f"characters must be >= 1, got {characters}")
        chars = dataset.labels["character"][val]
        keep = np.unique(chars)[:characters]
        val = val[np.isin(chars, keep)]
    return SequenceSubset(dataset, val)


def resolve_test_split(data_dir: str | Path) -> SequenceDataset:
    """The test split of a Sprites folder (``DIR/test``), or ``DIR`` itself."""
    data_dir = Path(data_dir)
    return _sprites_split(
        data_dir / "test" if (data_dir / "test").is_dir() else data_dir, ("attributes", "action")
    )


SPLIT_NAMES = {"test": "test", "val": "validation"}


def run_train_config(run: str | Path) -> TrainConfig:
    """The training config of a run folder (or of the run folder holding a model folder)."""
    from dsvae.train.run import CONFIG_FILE, read_run_config

    run = Path(run)
    for folder in (run, run.parent):
        if (folder / CONFIG_FILE).is_file():
            return read_run_config(folder).train
    raise DataError(
        f"{run} is not inside a run folder (no {CONFIG_FILE} in it or its parent): the "
        "validation characters are defined by the run's config; use --split test for a "
        "model folder on its own"
    )
