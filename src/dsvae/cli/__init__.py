"""The ``dsvae`` command: parse, call the library, print where the outputs went.

One module per subcommand group: :mod:`~dsvae.cli.quickstart`, :mod:`~dsvae.cli.data`,
:mod:`~dsvae.cli.train` (train, export, ablate, judge), :mod:`~dsvae.cli.operations`
(reconstruct, generate, swap, impute, convert) and :mod:`~dsvae.cli.evaluate`.

Errors in what the user passed (a bad config, a missing data set, a model folder
without config.json, ...) and in the environment (a full disk, a read-only file
system, an ``--out`` that is a file) print one line and exit with status 2;
``--debug`` shows the traceback instead. A training stopped by Ctrl-C or SIGTERM saves
a checkpoint, prints the command that continues it and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dsvae import __version__
from dsvae.atomic import check_folder_path, missing_dirs, remove_dirs
from dsvae.cli import data, evaluate, operations, quickstart, train
from dsvae.cli.common import formatter
from dsvae.errors import DsvaeError, TrainingInterrupted, os_error_line

EPILOG_MAIN = """\
examples:
  dsvae quickstart --out dsvae-quickstart
  dsvae data bouncing-ball --out data/ball --n 5000 --length 30
  dsvae data video --in my-videos --out data/mine --length 16 --size 64
  dsvae train configs/quickstart.yaml --data data/ball --out runs/ball
  dsvae swap runs/ball --data data/ball --out pictures/swap
"""


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand, in the order ``dsvae --help`` lists them."""
    parser = argparse.ArgumentParser(
        prog="dsvae",
        description="Disentangled Sequential Autoencoder (Li & Mandt, ICML 2018): learn a static "
        "latent f (content) and dynamic latents z_t (motion) from video or audio sequences.",
        epilog=EPILOG_MAIN,
        formatter_class=formatter,
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"dsvae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    quickstart.register(sub)
    data.register(sub)
    train.register_train(sub)
    train.register_export(sub)
    train.register_ablate(sub)
    operations.register_pictures(sub)
    train.register_judge(sub)
    evaluate.register(sub)
    operations.register_convert(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    made_for_out: list[Path] = []
    try:
        if isinstance(getattr(args, "out", None), Path):
            check_folder_path(args.out)  # a file, a path under a file, a read-only place
            made_for_out = missing_dirs(args.out)
        args.func(args)
    except TrainingInterrupted as err:
        print(f"dsvae {args.command}: {_one_line(err)}", file=sys.stderr)
        return 128 + err.signum
    except (DsvaeError, MemoryError, OSError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not out_of_memory(err):
            raise  # a defect, not the user's input: keep its traceback
        remove_dirs(made_for_out)  # a failed command leaves no empty folder it made for --out
        if args.debug:
            raise
        print(f"dsvae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is torch failing to allocate (on the CPU or on a GPU)."""
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and (
        "DefaultCPUAllocator" in text or "not enough memory" in text or "out of memory" in text
    )


def _one_line(err: BaseException) -> str:
    """The error's message on one line (YAML and torch messages span several)."""
    if isinstance(err, OSError) and err.errno is not None:  # one the library did not word
        return " ".join(os_error_line(err).split())
    text = " ".join(str(err).split())
    if isinstance(err, MemoryError) or out_of_memory(err):
        return f"not enough memory ({text or 'allocation failed'}); ask for smaller sizes"
    return text
