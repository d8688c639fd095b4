"""The minibatch estimate of I(f; z_1:T) for a trained run, on batches of a data set.

The penalty ``train.mi_weight`` descends this estimate. It cannot exceed log B (B, the
batch size): when the posteriors of a trained model single out every sequence, the
estimate sits at log B and its gradient vanishes, so the penalty has nothing to act on.
This script shows where a run stands:

    python scripts/mi_estimate.py runs/speech/speech-f16-factorised-s0 data/speech/train
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

from dsvae.data import SequenceDataset, prepare_frames
from dsvae.model import load_model
from dsvae.model.information import mutual_information


def estimate(
    model, dataset: SequenceDataset, batches: int, batch_size: int, seed: int
) -> list[float]:
    """The estimate on ``batches`` random batches (without replacement within a batch)."""
    rng = np.random.default_rng(seed)
    size = min(batch_size, len(dataset))
    values = []
    with torch.no_grad():
        for i in range(batches):
            index = rng.choice(len(dataset), size, replace=False)
            x = prepare_frames(torch.stack([dataset[int(j)] for j in index]))
            out = model(x, generator=torch.Generator().manual_seed(seed + i))
            values.append(mutual_information(out.q_f, out.f, out.q_z, out.z).item())
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder (or its model/ folder)")
    parser.add_argument("data", help="a data set folder, e.g. data/speech/train")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    model = load_model(args.run).eval()
    dataset = SequenceDataset(args.data)
    values = estimate(model, dataset, args.batches, args.batch_size, args.seed)
    size = min(args.batch_size, len(dataset))
    print(
        f"I(f; z_1:T) estimate: {np.mean(values):.3f} nats (sd {np.std(values):.3f} over "
        f"{len(values)} batches of {size}); ceiling log B = {math.log(size):.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
