"""Deterministic train/validation splits of a data set's sequences."""

from __future__ import annotations

import numpy as np

from dsvae.errors import DataError


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)`` into sorted (train, validation) indices.

    The validation part has ``round(n * val_fraction)`` items, at least 1 when
    ``val_fraction > 0``, and the training part keeps at least 1.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if n < 1 or (val_fraction > 0 and n < 2):
        raise DataError(
            f"cannot split {n} sequences with val_fraction={val_fraction}; "
            "build a bigger data set or set val_fraction to 0"
        )
    n_val = 0 if val_fraction == 0 else min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_groups(
    groups: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split sequences by group (e.g. Sprites characters) into sorted (train, validation) indices.

    ``groups`` holds one label per sequence, shape (N,). ``round(G * val_fraction)`` of the
    G distinct groups (at least 1, and leaving at least 1) go to validation with all their
    sequences, so that no group is in both parts. Which groups are held out depends only on
    the sorted distinct labels and ``seed``, not on the order of the sequences.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise DataError(f"a group label must hold one value per sequence, got shape {groups.shape}")
    values = np.unique(groups)
    if val_fraction > 0 and len(values) < 2:
        raise DataError(
            f"cannot hold out groups: the label has {len(values)} distinct value(s); "
            "set train.val_group to null for a random split"
        )
    _, held = split_indices(len(values), val_fraction, seed)
    is_val = np.isin(groups, values[held])
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
