"""``dsvae data KIND``: build a data set folder (bouncing ball, Sprites, speech, your videos)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from dsvae.cli.common import (
    add,
    add_factor_args,
    add_overwrite,
    add_path,
    add_seed,
    factors,
    names,
    warn,
)
from dsvae.errors import DsvaeError


def register(sub) -> None:
    p = add(
        sub,
        "data",
        "build a data set folder",
        "Build a data set folder (frames.npy, labels.npz, meta.json).",
        "example:\n  dsvae data bouncing-ball --out data/ball",
    )
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")
    _bouncing_ball(kinds)
    _sprites(kinds)
    _speech(kinds)
    _video(kinds)


# ----------------------------------------------------------------------------- bouncing ball


def _bouncing_ball(kinds) -> None:
    b = add(
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
    add_path(b, "--out", "folder to create")
    b.add_argument("--n", type=int, default=5000, help="number of sequences (default 5000)")
    b.add_argument("--length", type=int, default=30, help="frames per sequence T (default 30)")
    b.add_argument("--size", type=int, default=32, help="frame side in pixels (default 32)")
    add_seed(b)
    add_factor_args(b, "ball", "3", "255")
    add_overwrite(b)
    b.set_defaults(func=cmd_data_bouncing_ball)


def cmd_data_bouncing_ball(args: argparse.Namespace) -> None:
    from dsvae.data import make_bouncing_ball_dataset
    from dsvae.data.shapes import StaticFactors

    chosen = factors(args, StaticFactors())
    out = make_bouncing_ball_dataset(
        args.out,
        n=args.n,
        length=args.length,
        size=args.size,
        seed=args.seed,
        overwrite=args.overwrite,
        show_progress=True,
        factors=chosen,
    )
    what = "" if chosen.is_paper else f" ({', '.join(chosen.shapes)})"
    print(
        f"wrote {args.n} sequences{what} of {args.length} frames ({args.size}x{args.size}) to {out}"
    )


# ----------------------------------------------------------------------------- Sprites


def _sprites(kinds) -> None:
    d = add(
        kinds,
        "sprites",
        "the paper's Sprites set from the 25 LPC sheets (Sec. 4.1)",
        "Composite the 1,296 characters from the LPC sheets (skin, pants, tops, hair, boots), cut "
        "the 9 actions x 8 frames at 64x64, and write DIR/train (9,000 sequences, 1,000 characters) "
        "and DIR/test (2,664 sequences, 296 characters) with the paper's split (seed 423). "
        "Labels: character, action (3*action + direction) and attributes [skin, pants, tops, hair]. "
        "The sheets are CC-BY-SA 3.0 / GPL 3.0 art; so is the data built from them.",
        "example:\n  dsvae data sprites --sheets ../shared/data/lpc-sprites --out data/sprites",
    )
    add_path(d, "--sheets", "folder with the LPC sheet layers")
    add_path(d, "--out", "folder to create (train/ and test/)")
    add_overwrite(d)
    d.add_argument(
        "--characters",
        type=int,
        default=None,
        metavar="N",
        help="a preview: only the first N characters of each split (9 sequences each)",
    )
    d.set_defaults(func=cmd_data_sprites)


def cmd_data_sprites(args: argparse.Namespace) -> None:
    from dsvae.data.sprites import build_sprites, preview_characters

    characters = None
    if args.characters is not None:
        if args.characters < 1:
            raise DsvaeError(f"--characters must be at least 1, got {args.characters}")
        characters = preview_characters(args.sheets, args.characters)
    train, test = build_sprites(
        args.sheets, args.out, overwrite=args.overwrite, show_progress=True, characters=characters
    )
    print(f"wrote {train} and {test}")


# ----------------------------------------------------------------------------- speech


def _speech(kinds) -> None:
    d = add(
        kinds,
        "speech",
        "200 ms log-spectrum segments from FSDD, Allison, TIMIT or a WAV folder (Sec. 4.2)",
        "Cut speech into 200 ms segments of 20 log-magnitude spectra (200 bins, 10 ms hop, 25 ms "
        "sqrt-Hann frames, as Hsu et al. 2017), normalised per bin with the training frames' "
        "mean and std (kept in meta.json). Writes OUT/train, OUT/test-seen (held-out utterances "
        "of training speakers) and OUT/test-unseen (held-out speakers). Sources can be combined. "
        "FSDD uses its official split; TIMIT drops SA sentences and tests on the 24-speaker core "
        "test set.",
        "examples:\n  dsvae data speech --fsdd ../shared/data/fsdd --allison ../shared/data/allison "
        "--out data/speech\n  dsvae data speech --timit /data/TIMIT --out data/timit\n"
        "  dsvae data speech --folder my_voices --speaker-regex '^([a-z]+)_' --out data/voices",
    )
    add_path(d, "--out", "folder to create")
    d.add_argument("--fsdd", type=Path, help="Free Spoken Digit Dataset folder (recordings/)")
    d.add_argument("--allison", type=Path, help="the Allison prompts folder (one female speaker)")
    d.add_argument("--timit", type=Path, help="TIMIT folder with TRAIN/ and TEST/")
    d.add_argument("--folder", type=Path, help="any folder of mono WAV files")
    rule = d.add_mutually_exclusive_group()
    rule.add_argument(
        "--speaker-regex",
        help="for --folder: regex searched in each relative path; group 'speaker' (or group 1) "
        "is the speaker, an optional group 'digit' the digit",
    )
    rule.add_argument(
        "--speaker-csv", type=Path, help="for --folder: CSV with file,speaker[,digit,gender]"
    )
    d.add_argument(
        "--unseen",
        type=names,
        default=None,
        metavar="A,B",
        help="speakers to hold out entirely (FSDD default: theo,yweweler; folder default: none)",
    )
    d.add_argument(
        "--holdout",
        type=float,
        default=None,
        help="fraction of each speaker's utterances held out as test-seen (Allison and folders "
        "0.1, TIMIT 0.125 = one of eight)",
    )
    d.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="rate of the data set (default: the first file's)",
    )
    d.add_argument(
        "--resample",
        action="store_true",
        help="resample files at other rates instead of refusing them",
    )
    d.add_argument(
        "--short",
        choices=("pad", "drop"),
        default="pad",
        help="utterances shorter than 200 ms: pad with silence (default) or drop",
    )
    d.add_argument(
        "--dynamic-range",
        type=float,
        default=None,
        metavar="DB",
        help="measure each utterance from its loudest bin and floor it DB decibels below, so "
        "that recording level and background noise do not identify the speaker (e.g. 40; "
        "default: absolute levels, as in the paper)",
    )
    add_seed(d, "seed of the held-out choice (default 0)")
    add_overwrite(d)
    d.set_defaults(func=cmd_data_speech)


def cmd_data_speech(args: argparse.Namespace) -> None:
    from dsvae.data import SequenceDataset
    from dsvae.data.speech import SPLITS, build_speech, collect_utterances

    utterances, notes = collect_utterances(
        fsdd=args.fsdd,
        allison=args.allison,
        timit=args.timit,
        folder=args.folder,
        speaker_regex=args.speaker_regex,
        speaker_csv=args.speaker_csv,
        unseen=args.unseen,
        holdout=args.holdout,
        seed=args.seed,
    )
    for note in notes:
        print(note)
    counts = Counter(u.split for u in utterances)
    print("utterances: " + ", ".join(f"{s} {counts[s]}" for s in SPLITS))
    out = build_speech(
        utterances,
        args.out,
        sample_rate=args.sample_rate,
        resample=args.resample,
        short=args.short,
        dynamic_range_db=args.dynamic_range,
        seed=args.seed,
        overwrite=args.overwrite,
        show_progress=True,
    )
    for path in out.values():
        ds = SequenceDataset(path)
        print(f"wrote {path}: {len(ds)} segments of {ds.length} x {ds.frame_shape[0]}")


# ----------------------------------------------------------------------------- your videos


def _video(kinds) -> None:
    v = add(
        kinds,
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
    add_path(v, "--out", "data set folder to create")
    v.add_argument("--length", type=int, required=True, help="frames per sequence T")
    v.add_argument("--size", type=int, required=True, help="frame side S in pixels")
    v.add_argument(
        "--stride", type=int, default=None, help="frames between sequence starts (default T)"
    )
    v.add_argument(
        "--channels", type=int, default=3, choices=(1, 3), help="1 grey or 3 RGB (default 3)"
    )
    v.add_argument("--strict", action="store_true", help="stop at the first unreadable file")
    add_overwrite(v)
    v.set_defaults(func=cmd_data_video)


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
        warn=warn,
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
