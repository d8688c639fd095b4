"""Experiment subcommands of ``dsvae``: Sprites (Sec. 4.1) and the bouncing ball (Sec. 4.3)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from dsvae.errors import DsvaeError

AddParser = Callable[..., argparse.ArgumentParser]


def register(sub, data_kinds, add: AddParser):
    """Add ``data sprites``, ``judge sprites`` and ``evaluate sprites``; return the evaluate kinds."""
    d = add(
        data_kinds,
        "sprites",
        "the paper's Sprites set from the 25 LPC sheets (Sec. 4.1)",
        "Composite the 1,296 characters from the LPC sheets (skin, pants, tops, hair, boots), cut "
        "the 9 actions x 8 frames at 64x64, and write DIR/train (9,000 sequences, 1,000 characters) "
        "and DIR/test (2,664 sequences, 296 characters) with the paper's split (seed 423). "
        "Labels: character, action (3*action + direction) and attributes [skin, pants, tops, hair]. "
        "The sheets are CC-BY-SA 3.0 / GPL 3.0 art; so is the data built from them.",
        "example:\n  dsvae data sprites --sheets ../shared/data/lpc-sprites --out data/sprites",
    )
    d.add_argument("--sheets", type=Path, required=True, help="folder with the LPC sheet layers")
    d.add_argument("--out", type=Path, required=True, help="folder to create (train/ and test/)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    d.add_argument(
        "--characters",
        type=int,
        default=None,
        metavar="N",
        help="a preview: only the first N characters of each split (9 sequences each)",
    )
    d.set_defaults(func=cmd_data_sprites)

    j = add(
        sub,
        "judge",
        "train the judge classifier used by the Sprites metrics",
        "Train the classifier of Sec. 4.1 on the labelled training frames: per-frame heads for "
        "skin, pants, tops and hair, and a per-sequence head for the action. It is saved as "
        "judge.json + judge.safetensors; its accuracy on DIR/test is printed and saved.",
        "example:\n  dsvae judge sprites --data data/sprites --out judges/sprites",
    )
    kinds = j.add_subparsers(dest="kind", required=True, metavar="KIND")
    js = add(
        kinds,
        "sprites",
        "the Sprites judge",
        "Train the Sprites judge.",
        "example:\n  dsvae judge sprites --data data/sprites --out judges/sprites --epochs 8",
    )
    js.add_argument(
        "--data", type=Path, required=True, help="Sprites folder (with train/ and test/)"
    )
    js.add_argument("--out", type=Path, required=True, help="folder for the judge")
    js.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the judge's)"
    )
    js.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    js.add_argument("--overwrite", action="store_true", help="replace an existing judge")
    js.set_defaults(func=cmd_judge_sprites)

    e = add(
        sub,
        "evaluate",
        "measure disentanglement with the paper's protocols",
        "Evaluate a trained model: Table 1 (disagreement, KL-recon, KL-random), the later-work "
        "protocol (action Acc, IS, H(y|x), H(y), attribute accuracy) and Figures 3-4, written as "
        "JSON, Markdown and PNG/GIF.",
        "example:\n  dsvae evaluate sprites runs/sprites --judge judges/sprites --data data/sprites --out eval/sprites",
    )
    kinds = e.add_subparsers(dest="kind", required=True, metavar="KIND")
    es = add(
        kinds,
        "sprites",
        "Table 1 and Figures 3-4 on Sprites",
        "Evaluate on the Sprites test split: Table 1, the later-work protocol, Figures 3-4, "
        "the action row split into motion and direction, and a diagnostic with both factors "
        "inferred: the judge on reconstructions (what the autoencoder loses before any factor "
        "is sampled) and on f/z_1:T swaps between test sequences (which factor carries a row).",
        "example:\n  dsvae evaluate sprites runs/sprites --judge judges/sprites --data data/sprites --out eval/sprites",
    )
    es.add_argument("run", type=Path, help="run folder or saved model folder")
    es.add_argument("--judge", type=Path, required=True, help="judge folder (dsvae judge sprites)")
    es.add_argument("--data", type=Path, required=True, help="Sprites folder or its test/ split")
    es.add_argument("--out", type=Path, required=True, help="folder for the tables and figures")
    es.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    es.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="test: the 296 test characters (default); val: the validation characters the "
        "run held out of DATA/train (for choosing settings; needs the run folder)",
    )
    es.add_argument("--no-figures", action="store_true", help="tables only")
    es.add_argument(
        "--trajectories",
        type=int,
        default=200,
        metavar="N",
        help="generated sequences per repeat in Figure 4 (default 200, as in the paper)",
    )
    es.add_argument(
        "--device",
        default="auto",
        help="where the model and judge run: auto (a GPU when there is one), cpu, cuda",
    )
    es.set_defaults(func=cmd_evaluate_sprites)

    eb = add(
        kinds,
        "bouncing-ball",
        "Figures 7-8: error against missing frames",
        "For k = 0..T-1 missing frames at the end, every model observes the first T-k frames of "
        "each test sequence and predicts the rest; the fraction of wrong pixels (binarised at 0.5) "
        "is averaged. Runs are grouped by model.dynamics (stochastic, lstm-f, lstm-c); seeds of one "
        "model give the spread. Writes curves.json, curves.csv, figure7.png, figure8.png and a table.",
        "example:\n  dsvae evaluate bouncing-ball runs/bb-s0 runs/bb-s1 runs/bb-lstm-f-s0 "
        "--data data/ball/test --out eval/ball",
    )
    eb.add_argument("runs", type=Path, nargs="+", help="run folders or saved model folders")
    eb.add_argument("--data", type=Path, required=True, help="test data set folder")
    eb.add_argument("--out", type=Path, required=True, help="folder for curves and figures")
    eb.add_argument(
        "--observed", type=int, default=20, help="observed frames in Fig. 7 (default 20)"
    )
    eb.add_argument("--limit", type=int, default=None, help="use only the first N test sequences")
    eb.set_defaults(func=cmd_evaluate_bouncing_ball)
    return kinds


def cmd_data_sprites(args: argparse.Namespace) -> None:
    from dsvae.data.sprites import build_sprites, load_sheets

    characters = None
    if args.characters is not None:
        if args.characters < 1:
            raise DsvaeError(f"--characters must be at least 1, got {args.characters}")
        sheets = load_sheets(args.sheets)
        n = args.characters
        characters = [*sheets.train_ids[:n], *sheets.test_ids[:n]]
    train, test = build_sprites(
        args.sheets, args.out, overwrite=args.overwrite, show_progress=True, characters=characters
    )
    print(f"wrote {train} and {test}")


def cmd_judge_sprites(args: argparse.Namespace) -> None:
    from dsvae.eval.judge import judge_accuracy, train_judge
    from dsvae.io import atomic_write_json

    kwargs = {} if args.epochs is None else {"epochs": args.epochs}
    train_dir = args.data / "train" if (args.data / "train").is_dir() else args.data
    result = train_judge(train_dir, args.out, seed=args.seed, overwrite=args.overwrite, **kwargs)
    print(f"judge saved to {args.out}")
    test_dir = args.data / "test"
    if test_dir.is_dir():
        accuracy = judge_accuracy(result.judge, test_dir)
        atomic_write_json(args.out / "test_accuracy.json", accuracy)
        print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in accuracy.items()))


def cmd_evaluate_sprites(args: argparse.Namespace) -> None:
    from dsvae.eval.sprites import evaluate_sprites

    report = evaluate_sprites(
        args.run,
        args.judge,
        args.data,
        args.out,
        seed=args.seed,
        figures=not args.no_figures,
        trajectory_sequences=args.trajectories,
        device=args.device,
        split=args.split,
    )
    print((args.out / "sprites_eval.md").read_text())
    print(f"wrote {args.out / 'sprites_eval.json'} and {len(report['figures'])} figures")


def cmd_evaluate_bouncing_ball(args: argparse.Namespace) -> None:
    from dsvae.eval.bouncing_ball import evaluate_bouncing_ball

    report = evaluate_bouncing_ball(
        args.runs, args.data, args.out, observed=args.observed, limit=args.limit
    )
    print(report["markdown"])
    print(f"wrote {args.out}: curves.json, curves.csv, figure7.png, figure8.png")
