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
    _synth_speech(kinds)
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
    d.add_argument(
        "--synth",
        type=Path,
        help="a folder written by `dsvae data synth-speech` (its voices and split are kept)",
    )
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
        synth=args.synth,
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


# ----------------------------------------------------------------------------- synthetic speech


def _synth_speech(kinds) -> None:
    from dsvae.data import synth_speech as sy

    p = add(
        kinds,
        "synth-speech",
        "many synthetic voices saying digits (espeak-ng): voice, pitch and f0 known",
        "Synthesise a controlled many-voice speech set with espeak-ng (apt-get install "
        "espeak-ng). Each voice is an espeak-ng variant (its gender from espeak-ng) at one "
        "pitch (-p, per gender) and speed (-s); it says every word --takes times with the "
        "pitch and speed jittered a little. The audio is resampled to 8 kHz and cut by the "
        "front end of `dsvae data speech`, so the two can be mixed (dsvae data speech --synth). "
        "Writes OUT/train and OUT/test-seen (held-out takes of the training voices), "
        "OUT/test-unseen (every voice of the held-out variants) and OUT/wav (the WAVs and "
        "utterances.csv). Labels: voice, variant, pitch, pitch_used, speed_used, word, f0 "
        "(pyin, Hz), digit, gender. Deterministic from --seed.",
        "examples:\n  dsvae data synth-speech --out data/synth\n"
        "  dsvae data synth-speech --out data/synth-small --voices m1,m3,f1,f3 --words one,two "
        "--takes 2\n  dsvae data speech --fsdd ../shared/data/fsdd --allison "
        "../shared/data/allison --synth data/synth --out data/speech-synth",
    )
    default_voices = ",".join(sy.MALE_VARIANTS + sy.FEMALE_VARIANTS)
    p.add_argument("--out", type=Path, required=True, help="folder to create")
    p.add_argument(
        "--voices",
        type=names,
        default=names(default_voices),
        metavar="V,V",
        help=f"espeak-ng voice variants (`espeak-ng --voices=variant`; default {default_voices})",
    )
    for gender, pitches in (("male", sy.MALE_PITCHES), ("female", sy.FEMALE_PITCHES)):
        p.add_argument(
            f"--{gender}-pitches",
            type=_ints,
            default=list(pitches),
            metavar="P,P",
            help=f"espeak-ng -p settings (0-99) for {gender} variants "
            f"(default {','.join(map(str, pitches))})",
        )
    p.add_argument(
        "--speeds",
        type=_ints,
        default=list(sy.SPEEDS),
        metavar="S,S",
        help=f"espeak-ng -s settings, words per minute (default {','.join(map(str, sy.SPEEDS))})",
    )
    words = ",".join(sy.DIGIT_WORDS + sy.EXTRA_WORDS)
    p.add_argument(
        "--words", type=names, default=names(words), help=f"words said (default {words})"
    )
    p.add_argument("--takes", type=int, default=4, help="takes of each word per voice (default 4)")
    p.add_argument("--pitch-jitter", type=int, default=4, help="± -p per take (default 4)")
    p.add_argument("--speed-jitter", type=int, default=10, help="± -s per take (default 10)")
    p.add_argument(
        "--unseen",
        type=names,
        default=None,
        metavar="V,V",
        help="variants whose voices are all test-unseen (default: a quarter of each gender's, "
        "drawn from --seed)",
    )
    p.add_argument(
        "--holdout", type=float, default=0.2, help="fraction of takes held out as test-seen"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the jitter and the split")
    p.add_argument("--jobs", type=int, default=1, help="processes (the data do not depend on it)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    p.set_defaults(func=cmd_data_synth_speech)


def _ints(text: str) -> list[int]:
    try:
        return [int(v) for v in names(text)]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected integers like 60,95: {text!r}") from err


def cmd_data_synth_speech(args: argparse.Namespace) -> None:
    from dsvae.data import SequenceDataset
    from dsvae.data import synth_speech as sy

    male, female = sy.variants_by_gender(args.voices)
    spec = sy.SynthSpec(
        male_variants=male,
        female_variants=female,
        male_pitches=tuple(args.male_pitches),
        female_pitches=tuple(args.female_pitches),
        speeds=tuple(args.speeds),
        words=tuple(args.words),
        takes=args.takes,
        pitch_jitter=args.pitch_jitter,
        speed_jitter=args.speed_jitter,
        unseen=None if args.unseen is None else tuple(args.unseen),
        holdout=args.holdout,
        seed=args.seed,
    )
    print(f"{len(spec.voices)} voices; unseen variants: {', '.join(spec.unseen_variants())}")
    out = sy.build_synth_speech(
        spec, args.out, jobs=args.jobs, overwrite=args.overwrite, show_progress=True
    )
    for split, path in out.items():
        if split != "wav":
            ds = SequenceDataset(path)
            print(f"wrote {path}: {len(ds)} segments of {ds.length} x {ds.frame_shape[0]}")
    print(f"wrote {out['wav']}: the WAVs and {sy.UTTERANCES_FILE}")


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
