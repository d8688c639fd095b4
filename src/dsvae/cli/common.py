"""What every subcommand module shares: the help layout and arguments used by several."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

AddParser = Callable[..., argparse.ArgumentParser]
"""The type of :func:`add`: ``add(subparsers, name, help, description, epilog)``."""


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def add(sub, name: str, help: str, description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand with the shared help layout (examples kept as written)."""
    return sub.add_parser(
        name, help=help, description=description, epilog=epilog, formatter_class=formatter
    )


def add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config key, e.g. --set {example} (repeatable)",
    )


def add_factor_args(p: argparse.ArgumentParser, shapes: str, sizes: str, greys: str) -> None:
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


def factors(args: argparse.Namespace, default):
    """The StaticFactors that --shapes, --sizes and --greys give, each falling back to ``default``."""
    from dsvae.data.shapes import StaticFactors, parse_list

    return StaticFactors(
        parse_list(args.shapes, str, "--shapes") if args.shapes else default.shapes,
        parse_list(args.sizes, float, "--sizes") if args.sizes else default.sizes,
        parse_list(args.greys, int, "--greys") if args.greys else default.greys,
    )


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from err


def names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def say(paths: list[Path]) -> None:
    """Print each path indented, one a line."""
    for path in paths:
        print(f"  {path}")


def warn(message: str) -> None:
    """A warning on stderr that does not break a progress bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)


def add_run(p: argparse.ArgumentParser, help: str = "run folder or saved model folder") -> None:
    """The positional RUN: a run folder (or a saved model folder)."""
    p.add_argument("run", type=Path, help=help)


def add_path(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """A required folder or file option such as ``--data`` or ``--out``."""
    p.add_argument(flag, type=Path, required=True, help=help)


def add_seed(p: argparse.ArgumentParser, help: str = "random seed (default 0)") -> None:
    p.add_argument("--seed", type=int, default=0, help=help)


def add_overwrite(p: argparse.ArgumentParser, help: str = "replace an existing data set") -> None:
    p.add_argument("--overwrite", action="store_true", help=help)
