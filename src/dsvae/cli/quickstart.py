"""``dsvae quickstart``: simulate shapes, train a small model, measure and draw."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsvae.cli.common import add, add_factor_args, add_overrides, add_seed, factors, say
from dsvae.errors import DsvaeError


def register(sub) -> None:
    p = add(
        sub,
        "quickstart",
        "simulate shapes, train a small model, measure and draw (CPU, ~4 min)",
        "Simulate bouncing shapes (a ball, a triangle or a bar per sequence "
        "), train the quickstart model for a fixed number of steps, measure how "
        "well f keeps the content and z_1:T the motion on held-out pairs (no learned judge: "
        "shapes are read by template matching, motion by centres of mass), and write an "
        "overview PNG plus grids and GIFs of reconstruction, generation, swapping and "
        "imputation. Every number goes to DIR/summary.json.",
        "example:\n  dsvae quickstart --out dsvae-quickstart",
    )
    p.add_argument("--out", type=Path, default=Path("dsvae-quickstart"), help="output folder")
    p.add_argument(
        "--steps", type=int, default=750, help="training steps of batch 32 (default 750)"
    )
    p.add_argument("--n", type=int, default=1000, help="training sequences to simulate")
    p.add_argument("--length", type=int, default=10, help="frames per sequence")
    add_seed(p, "seed for data, model and pictures")
    add_factor_args(p, "ball,triangle,bar", "5", "255")
    add_overrides(p, "model.posterior=full")
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> None:
    from dsvae.quickstart import FACTORS, markdown_table, run_quickstart

    if args.out.exists() and any(args.out.iterdir()):
        raise DsvaeError(f"{args.out} already exists and is not empty; choose another --out")
    if args.steps < 1:
        raise DsvaeError(f"--steps must be at least 1, got {args.steps}")
    print(f"dsvae quickstart: simulating, training {args.steps} steps, measuring, drawing ...")
    result = run_quickstart(
        args.out,
        n=args.n,
        length=args.length,
        steps=args.steps,
        seed=args.seed,
        factors=factors(args, FACTORS),
        overrides=args.overrides,
    )
    print(
        f"held-out ELBO per sequence: {result.elbo_before:.1f} before training, "
        f"{result.elbo_after:.1f} after (nats; higher is better)"
    )
    print("disentanglement on held-out pairs (f donor a, z donor b, different shapes):")
    print(markdown_table(result.scores), end="")
    print(f"numbers: {args.out / 'summary.json'}\nmodel: {args.out / 'run' / 'model'}")
    print(f"overview: {result.pictures[0]}\npictures:")
    say(result.pictures[1:])
    print(f"done in {result.wall_time_s:.0f} s")
