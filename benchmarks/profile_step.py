"""Where one training step of a shipped config spends its CPU time, by operator family.

    python benchmarks/profile_step.py --config sprites-cpu --batch 32 --threads 1

Runs one warm-up step, then profiles two steps with torch.profiler and prints the share
of self CPU time taken by convolutions, batch norm and activations, LSTMs and the rest,
then the top operators.
"""

from __future__ import annotations

import argparse

import torch

from dsvae.config import load_config
from dsvae.data import prepare_frames
from dsvae.model import build_model

FAMILIES = {
    "convolution": ("conv", "mkldnn_convolution"),
    "batch norm + activations": ("batch_norm", "relu", "elu"),
    "LSTM": ("rnn", "lstm"),
}


def main(argv=None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="sprites-cpu")
    p.add_argument("--frame-shape", default="[3,64,64]")
    p.add_argument("--length", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="config override")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config, [f"model.frame_shape={args.frame_shape}", *args.set])
    model = build_model(cfg.model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    c, h, w = cfg.model.frame_shape
    batch = torch.randint(0, 256, (args.batch, args.length, h, w, c), dtype=torch.uint8)

    def step() -> None:
        loss = model.loss(model(prepare_frames(batch)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()
    with torch.profiler.profile() as prof:
        step()
        step()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    shares = {name: 0.0 for name in [*FAMILIES, "other"]}
    for e in events:
        family = next((f for f, keys in FAMILIES.items() if any(k in e.key for k in keys)), "other")
        shares[family] += e.self_cpu_time_total / total
    for name, share in shares.items():
        print(f"{name:>26}: {share:6.1%}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    return shares


if __name__ == "__main__":
    main()
