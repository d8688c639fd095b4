"""The ``dsvae`` command: parse, call the library, print where the outputs went.

Errors in what the user passed (a bad config, a missing data set, a model folder
without config.json, ...) print one line and exit with status 2; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dsvae import __version__, cli_data, cli_experiments, cli_speech
from dsvae.errors import ConfigError, DsvaeError

EPILOG_MAIN = """\
examples:
  dsvae quickstart --out dsvae-quickstart
  dsvae data bouncing-ball --out data/ball --n 5000 --length 30
  dsvae data video --in my-videos --out data/mine --length 16 --size 64
  dsvae train configs/quickstart.yaml --data data/ball --out runs/ball
  dsvae swap runs/ball --data data/ball --out pictures/swap
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add(sub, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=_formatter
    )


def _add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, e.g. --set {example} (repeatable)",
    )


def _add_factor_args(p: argparse.ArgumentParser, shapes: str, sizes: str, greys: str) -> None:
    """--shapes, --sizes, --greys: the static content drawn per sequence (bouncing shapes)."""
    p.add_argument(
        "--shapes",
        default=None,
        help="comma-separated shapes drawn per sequence: ball, square, triangle, diamond, bar "
        f"(default {shapes})",
    )
    p.add_argument(
        "--sizes",
        default=None,
        help=f"comma-separated sizes: radii of equal-area discs on the 32 px canvas (default {sizes})",
    )
    p.add_argument(
        "--greys", default=None, help=f"comma-separated grey levels 1..255 (default {greys})"
    )


def _factors(args: argparse.Namespace, default):
    """The StaticFactors that --shapes, --sizes and --greys give, each falling back to ``default``."""
    from dsvae.data.shapes import StaticFactors, parse_list

    return StaticFactors(
        parse_list(args.shapes, str, "--shapes") if args.shapes else default.shapes,
        parse_list(args.sizes, float, "--sizes") if args.sizes else default.sizes,
        parse_list(args.greys, int, "--greys") if args.greys else default.greys,
    )


# ----------------------------------------------------------------------------- parsers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dsvae",
        description="Disentangled Sequential Autoencoder (Li & Mandt, ICML 2018): learn a static "
        "latent f (content) and dynamic latents z_t (motion) from video or audio sequences.",
        epilog=EPILOG_MAIN,
        formatter_class=_formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"dsvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _quickstart_parser(sub)
    data_kinds = _data_parser(sub)
    _train_parser(sub)
    _export_parser(sub)
    _ablate_parser(sub)
    _operation_parsers(sub)
    evaluate_kinds = cli_experiments.register(sub, data_kinds, _add)
    cli_speech.register(sub, data_kinds, evaluate_kinds, _add)
    cli_data.register(data_kinds, _add)
    return parser


def _quickstart_parser(sub) -> None:
    p = _add(
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
    p.add_argument("--seed", type=int, default=0, help="seed for data, model and pictures")
    _add_factor_args(p, "ball,triangle,bar", "5", "255")
    _add_overrides(p, "model.posterior=full")
    p.set_defaults(func=cmd_quickstart)


def _data_parser(sub):
    p = _add(
        sub,
        "data",
        "build a data set folder",
        "Build a data set folder (frames.npy, labels.npz, meta.json).",
        "example:\n  dsvae data bouncing-ball --out data/ball",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    b = _add(
        kinds,
        "bouncing-ball",
        "a ball (or shapes) bouncing in an irregular polygon (paper Sec. 4.3)",
        "Simulate a ball of radius 3 bouncing elastically inside the irregular polygon of "
        "Fraccaro et al. (2017) with pymunk; binary frames, ball positions stored as labels. "
        "The defaults are the paper's: 5,000 sequences of 30 frames at 32x32. --shapes, "
        "--sizes and --greys give each sequence its own content instead (bouncing shapes): "
        "each is drawn uniformly per sequence and stored as a label (shape, size, grey). "
        "Sizes are radii of the disc of equal area on the 32 px canvas; shapes do not rotate.",
        "examples:\n  dsvae data bouncing-ball --out data/ball --n 5000 --length 30 --seed 0\n"
        "  dsvae data bouncing-ball --out data/shapes --shapes ball,square,triangle "
        "--sizes 3,4 --greys 255,140",
    )
    b.add_argument("--out", type=Path, required=True, help="folder to create")
    b.add_argument("--n", type=int, default=5000, help="number of sequences (default 5000)")
    b.add_argument("--length", type=int, default=30, help="frames per sequence T (default 30)")
    b.add_argument("--size", type=int, default=32, help="frame side in pixels (default 32)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _add_factor_args(b, "ball", "3", "255")
    b.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    b.set_defaults(func=cmd_data_bouncing_ball)
    return kinds


def _train_parser(sub) -> None:
    p = _add(
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
    p.add_argument("--data", type=Path, required=True, help="data set folder")
    p.add_argument("--out", type=Path, required=True, help="run folder")
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
    _add_overrides(p, "train.lr=1e-3")
    p.set_defaults(func=cmd_train)


def _ablate_parser(sub) -> None:
    p = _add(
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
    p.add_argument("--data", type=Path, required=True, help="Sprites folder (dsvae data sprites)")
    p.add_argument("--judge", type=Path, required=True, help="judge folder (dsvae judge sprites)")
    p.add_argument("--out", type=Path, required=True, help="grid folder (created, or continued)")
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


def _export_parser(sub) -> None:
    p = _add(
        sub,
        "export",
        "save the model of a run from its latest checkpoint",
        "Write RUN/model/ (config.json + model.safetensors) from RUN/checkpoints/last.ckpt, e.g. "
        "for a run that was stopped before it finished. Training can still be resumed afterwards.",
        "example:\n  dsvae export runs/sprites-cpu",
    )
    p.add_argument("run", type=Path, help="run folder")
    p.add_argument(
        "--checkpoint", default="last.ckpt", help="checkpoint file name (default last.ckpt)"
    )
    p.set_defaults(func=cmd_export)


def _operation_parsers(sub) -> None:
    specs = [
        ("reconstruct", "encode and decode sequences (Fig. 3 a-b)", cmd_reconstruct, True),
        (
            "generate",
            "sample from the prior: free, fixed f, fixed z (Fig. 3 g-h)",
            cmd_generate,
            False,
        ),
        ("swap", "swap content f and dynamics z between sequences (Fig. 3 e-f)", cmd_swap, True),
        ("impute", "fill in missing frames with the prior dynamics (Sec. 4.3)", cmd_impute, True),
    ]
    for name, help_text, func, needs_data in specs:
        example = f"example:\n  dsvae {name} runs/ball {'--data data/ball ' if needs_data else ''}--out pictures/{name}"
        p = _add(
            sub,
            name,
            help_text,
            f"{help_text[0].upper()}{help_text[1:]}. Writes a PNG grid "
            "(and a GIF for image data) and prints the paths.",
            example,
        )
        p.add_argument("run", type=Path, help="run folder or saved model folder")
        p.add_argument("--out", type=Path, required=True, help="folder for the pictures")
        p.add_argument("--n", type=int, default=6, help="number of sequences (default 6)")
        p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        if needs_data:
            p.add_argument("--data", type=Path, required=True, help="data set folder to draw from")
            p.add_argument(
                "--indices",
                type=_int_list,
                default=None,
                help="comma-separated sequence indices instead of a random pick",
            )
        if name == "generate":
            p.add_argument(
                "--length",
                type=int,
                default=None,
                help="frames per sequence (default: the training length if known, else 16)",
            )
        if name == "impute":
            group = p.add_mutually_exclusive_group()
            group.add_argument(
                "--observed",
                type=int,
                default=None,
                help="observe the first T frames and predict the rest (default T/2)",
            )
            group.add_argument(
                "--mask",
                default=None,
                help="which frames are observed, e.g. 1111001111 (1 = observed)",
            )
        p.set_defaults(func=func)


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


# ----------------------------------------------------------------------------- commands


def _say(paths: list[Path]) -> None:
    for path in paths:
        print(f"  {path}")


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
        factors=_factors(args, FACTORS),
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
    _say(result.pictures[1:])
    print(f"done in {result.wall_time_s:.0f} s")


def cmd_data_bouncing_ball(args: argparse.Namespace) -> None:
    from dsvae.data import make_bouncing_ball_dataset
    from dsvae.data.shapes import StaticFactors

    factors = _factors(args, StaticFactors())
    out = make_bouncing_ball_dataset(
        args.out,
        n=args.n,
        length=args.length,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
        show_progress=True,
        factors=factors,
    )
    what = "" if factors.is_paper else f" ({', '.join(factors.shapes)})"
    print(
        f"wrote {args.n} sequences{what} of {args.length} frames ({args.size}x{args.size}) to {out}"
    )


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
    result = train(config, args.data, args.out, resume=args.resume, callbacks=callbacks)
    elbo = result.metrics.get("val/elbo", result.metrics.get("train/elbo"))
    print(f"trained {result.global_step} steps in {result.wall_time_s:.0f} s; ELBO {elbo:.2f}")
    print(f"run folder: {result.run_dir}\nmodel: {result.model_dir}")


def cmd_export(args: argparse.Namespace) -> None:
    from dsvae.train.run import export_checkpoint

    print(f"model: {export_checkpoint(args.run, args.checkpoint)}")


def _model_and_batch(args: argparse.Namespace):
    from dsvae.data import SequenceDataset
    from dsvae.model import load_model
    from dsvae.showcase import load_batch

    model = load_model(args.run)
    if args.n < 1:
        raise DsvaeError(f"--n must be at least 1, got {args.n}")
    x = load_batch(
        SequenceDataset(args.data),
        args.n,
        seed=args.seed,
        indices=args.indices,
        frame_shape=model.frame_shape,
    )
    return model, x


def cmd_reconstruct(args: argparse.Namespace) -> None:
    from dsvae.showcase import write_reconstructions

    model, x = _model_and_batch(args)
    print("wrote:")
    _say(write_reconstructions(model, x, args.out))


def cmd_generate(args: argparse.Namespace) -> None:
    from dsvae.model import load_model
    from dsvae.showcase import write_generations

    model = load_model(args.run)
    length = args.length or _training_length(args.run) or 16
    if args.n < 1 or length < 1:
        raise DsvaeError(f"--n and --length must be at least 1, got {args.n} and {length}")
    print("wrote:")
    _say(write_generations(model, args.n, length, args.out, seed=args.seed))


def _training_length(run: Path) -> int | None:
    """T of the data a run folder was trained on, when its summary records it."""
    import json

    summary = run / "summary.json"
    if not summary.is_file():
        return None
    try:
        length = json.loads(summary.read_text(encoding="utf-8")).get("sequence_length")
    except (ValueError, AttributeError) as err:
        raise DsvaeError(
            f"{summary} is not valid JSON ({err}); pass --length, or delete the file"
        ) from err
    return length if isinstance(length, int) else None


def cmd_swap(args: argparse.Namespace) -> None:
    from dsvae.showcase import write_swap

    model, x = _model_and_batch(args)
    if x.shape[0] < 2:
        raise DsvaeError("swap needs at least two sequences; raise --n or pass more --indices")
    half = x.shape[0] // 2
    print("wrote:")
    _say(write_swap(model, x[:half], x[half : 2 * half], args.out))


def cmd_impute(args: argparse.Namespace) -> None:
    from dsvae.ops import observed_mask
    from dsvae.showcase import parse_mask, write_imputation

    model, x = _model_and_batch(args)
    b, t = x.shape[:2]
    if args.mask is not None:
        mask = parse_mask(args.mask, t).expand(b, t)
    else:
        mask = observed_mask(b, t, args.observed if args.observed is not None else max(1, t // 2))
    print("wrote:")
    _say(write_imputation(model, x, mask, args.out, seed=args.seed))


# ----------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        args.func(args)
    except (DsvaeError, MemoryError) as err:
        if args.debug:
            raise
        print(f"dsvae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _one_line(err: BaseException) -> str:
    """The error's message on one line (YAML and torch messages span several)."""
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError):
        return f"not enough memory ({text or 'allocation failed'}); ask for smaller sizes"
    return text


if __name__ == "__main__":
    sys.exit(main())
