"""``dsvae train``, ``export``, ``ablate`` and ``judge``: everything that trains a network."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from dsvae.cli.common import add, add_overrides, add_overwrite, add_path, add_run, add_seed
from dsvae.errors import ConfigError, TrainingInterrupted


def register_train(sub) -> None:
    p = add(
        sub,
        "train",
        "train a model from a YAML config",
        "Train a DSVAE with Lightning. The run folder gets the resolved config.yaml, metrics.csv, "
        "checkpoints/ (resume with --resume) and the final model/ (config.json + model.safetensors). "
        "CONFIG is a YAML path or the name of a shipped config (e.g. quickstart).",
        "examples:\n  dsvae train configs/quickstart.yaml --data data/ball --out runs/ball\n"
        "  dsvae train quickstart --data data/ball --out runs/ball --set train.max_epochs=50 --resume\n"
        "  # beyond Eq. 2: C-DSVAE's contrastive term on z (pitch shift for speech spectra)\n"
        "  dsvae train speech-f16-full --data data/speech/train --out runs/ct "
        "--set train.contrast_weight=100 --set train.contrast_temperature=0.1",
    )
    p.add_argument("config", help="YAML config file or shipped config name")
    add_path(p, "--data", "data set folder")
    add_path(p, "--out", "run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.ckpt")
    p.add_argument(
        "--judge",
        type=Path,
        help="Sprites judge folder (dsvae judge sprites): score the model on validation "
        "characters while it trains (probe/... columns in metrics.csv, disentanglement.png)",
    )
    p.add_argument(
        "--judge-every", type=int, default=1, metavar="N", help="score every N epochs (default 1)"
    )
    p.add_argument(
        "--judge-characters",
        type=int,
        default=32,
        metavar="N",
        help="validation characters scored, 9 sequences each (default 32)",
    )
    add_overrides(p, "train.lr=1e-3")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> None:
    from dsvae.config import load_config
    from dsvae.configs import config_path
    from dsvae.train import train

    config = load_config(config_path(args.config), args.overrides)
    callbacks = []
    if args.judge is not None:
        from dsvae.train.callbacks import DisentanglementProbe

        if args.judge_every < 1 or args.judge_characters < 1:
            raise ConfigError("--judge-every and --judge-characters must be >= 1")
        callbacks.append(
            DisentanglementProbe(
                args.judge, args.out, args.judge_every, args.judge_characters, config.train.seed
            )
        )
    try:
        result = train(config, args.data, args.out, resume=args.resume, callbacks=callbacks)
    except TrainingInterrupted as err:
        err.args = (err.describe(start_command(args)),)
        raise
    elbo = result.metrics.get("val/elbo", result.metrics.get("train/elbo"))
    print(f"trained {result.global_step} steps in {result.wall_time_s:.0f} s; ELBO {elbo:.2f}")
    print(f"run folder: {result.run_dir}\nmodel: {result.model_dir}")


def start_command(args: argparse.Namespace) -> str:
    """The ``dsvae train`` command that started this run, without ``--resume``."""
    words = ["dsvae", "train", args.config, "--data", str(args.data), "--out", str(args.out)]
    words += [word for override in args.overrides for word in ("--set", override)]
    if args.judge is not None:
        words += ["--judge", str(args.judge), "--judge-every", str(args.judge_every)]
        words += ["--judge-characters", str(args.judge_characters)]
    return shlex.join(words)


def register_export(sub) -> None:
    p = add(
        sub,
        "export",
        "save the model of a run from its latest checkpoint",
        "Write RUN/model/ (config.json + model.safetensors) from RUN/checkpoints/last.ckpt, e.g. "
        "for a run that was stopped before it finished. Training can still be resumed afterwards.",
        "example:\n  dsvae export runs/sprites-cpu",
    )
    add_run(p, "run folder")
    p.add_argument(
        "--checkpoint", default="last.ckpt", help="checkpoint file name (default last.ckpt)"
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> None:
    from dsvae.train.run import export_checkpoint

    print(f"model: {export_checkpoint(args.run, args.checkpoint)}")


def register_ablate(sub) -> None:
    p = add(
        sub,
        "ablate",
        "train config variants and score them on validation characters",
        "Train every variant of a grid (a YAML file: a base config, a budget in minutes, "
        "epochs or steps, and variants as lists of --set overrides) and score each on the validation "
        "characters its run held out of the Sprites training split, never the test split: "
        "Table 1, the later-work action Acc and the swap diagnostic, during training "
        "(metrics.csv, disentanglement.png) and at the end. Writes OUT/ablation.md and "
        "OUT/ablation.json. Run it again to continue: finished variants are kept, interrupted "
        "ones resume.",
        "example grid (grids/sprites-cpu.yaml):\n"
        "  config: sprites-cpu\n"
        "  budget: {minutes: 40}\n"
        "  variants:\n"
        "    - name: baseline\n"
        "    - name: scale-0.5\n"
        "      set: [model.likelihood.scale_value=0.5]\n\n"
        "examples:\n"
        "  dsvae ablate grids/sprites-cpu.yaml --data data/sprites --judge judges/sprites "
        "--out ablations/cpu --lanes 2 --threads 1\n"
        "  # on a GPU: one variant at a time\n"
        "  dsvae ablate grids/sprites-cpu.yaml --data data/sprites --judge judges/sprites --out ablations/gpu",
    )
    p.add_argument("grid", type=Path, help="grid YAML file")
    add_path(p, "--data", "Sprites folder (dsvae data sprites)")
    add_path(p, "--judge", "judge folder (dsvae judge sprites)")
    add_path(p, "--out", "grid folder (created, or continued)")
    p.add_argument("--lanes", type=int, default=1, help="variants trained at a time (default 1)")
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads per variant (default: torch's)"
    )
    p.add_argument(
        "--characters",
        type=int,
        default=32,
        help="validation characters scored during training (default 32; the final score "
        "uses all of them)",
    )
    p.add_argument(
        "--only", action="append", metavar="NAME", help="run only this variant (repeatable)"
    )
    p.set_defaults(func=cmd_ablate)


def cmd_ablate(args: argparse.Namespace) -> None:
    from dsvae.ablate import read_grid, run_grid

    grid = read_grid(args.grid)
    run_grid(
        grid,
        args.data,
        args.judge,
        args.out,
        lanes=args.lanes,
        threads=args.threads,
        characters=args.characters,
        only=args.only,
    )
    print((args.out / "ablation.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out / 'ablation.md'} and {args.out / 'ablation.json'}")


def register_judge(sub) -> None:
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
    add_path(js, "--data", "Sprites folder (with train/ and test/)")
    add_path(js, "--out", "folder for the judge")
    js.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: the judge's)"
    )
    add_seed(js)
    add_overwrite(js, "replace an existing judge")
    js.set_defaults(func=cmd_judge_sprites)


def cmd_judge_sprites(args: argparse.Namespace) -> None:
    from dsvae.train.judge import train_sprites_judge

    kwargs = {} if args.epochs is None else {"epochs": args.epochs}
    _, accuracy = train_sprites_judge(
        args.data, args.out, seed=args.seed, overwrite=args.overwrite, **kwargs
    )
    print(f"judge saved to {args.out}")
    if accuracy is not None:
        print("test accuracy: " + ", ".join(f"{k} {100 * v:.2f}%" for k, v in accuracy.items()))
