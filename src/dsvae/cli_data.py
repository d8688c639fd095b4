"""``dsvae data video``: import the user's own videos as a data set folder."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

AddParser = Callable[..., argparse.ArgumentParser]


def register(data_kinds, add: AddParser) -> None:
    """Add ``data video`` to the ``data`` subcommand."""
    v = add(
        data_kinds,
        "video",
        "your own videos: video files, GIFs or folders of numbered frames",
        "Cut the videos under --in into sequences of --length frames, one every --stride frames. "
        "Reads MP4, WebM, AVI, MOV and MKV files (with PyAV: pip install 'dsvae[video]'), "
        "animated GIFs, and folders of numbered PNG/JPEG frames. Frames are centre-cropped to a "
        "square and resized to --size pixels. Labels record where each sequence came from "
        "(source, start_frame). An unreadable file is skipped with a warning, unless --strict.",
        "examples:\n  dsvae data video --in my-videos --out data/mine --length 16 --size 64\n"
        "  dsvae data video --in clips --out data/clips --length 8 --size 32 --stride 4 --channels 1",
    )
    v.add_argument("--in", dest="in_path", type=Path, required=True, help="folder of videos")
    v.add_argument("--out", type=Path, required=True, help="data set folder to create")
    v.add_argument("--length", type=int, required=True, help="frames per sequence T")
    v.add_argument("--size", type=int, required=True, help="frame side S in pixels")
    v.add_argument(
        "--stride", type=int, default=None, help="frames between sequence starts (default T)"
    )
    v.add_argument(
        "--channels", type=int, default=3, choices=(1, 3), help="1 grey or 3 RGB (default 3)"
    )
    v.add_argument("--strict", action="store_true", help="stop at the first unreadable file")
    v.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    v.set_defaults(func=cmd_data_video)


def _warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def cmd_data_video(args: argparse.Namespace) -> None:
    from dsvae.data.video import import_videos

    report = import_videos(
        args.in_path,
        args.out,
        args.length,
        args.size,
        stride=args.stride,
        channels=args.channels,
        strict=args.strict,
        overwrite=args.overwrite,
        show_progress=True,
        warn=_warn,
    )
    print(
        f"wrote {report.num_sequences} sequences of {args.length} frames "
        f"({args.size}x{args.size}x{args.channels}) from {report.sources_used} videos to "
        f"{report.out_dir}"
    )
    if report.skipped:
        print(f"skipped {len(report.skipped)} unreadable files (listed in meta.json)")
    if report.too_short:
        print(f"{len(report.too_short)} videos had fewer than {args.length} frames (unused)")
