"""Speech subcommands of ``dsvae`` (Section 4.2): ``data speech``, ``evaluate speech``, ``convert``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from dsvae.errors import DsvaeError


def _names(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def register(sub, data_kinds, evaluate_kinds, add) -> None:
    """Add ``data speech``, ``evaluate speech`` and ``convert`` to the parser."""
    d = add(
        data_kinds,
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
    d.add_argument("--out", type=Path, required=True, help="folder to create")
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
        type=_names,
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
    d.add_argument("--seed", type=int, default=0, help="seed of the held-out choice (default 0)")
    d.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    d.set_defaults(func=cmd_data_speech)

    e = add(
        evaluate_kinds,
        "speech",
        "Table 2: speaker verification EER of mu_f and mu_z",
        "Per test utterance, mu_f (mean of E_q[f] over its segments) and mu_z (mean of E_q[z_t] "
        "over time and segments); cosine scores for every pair of utterances; equal error rate. "
        "Reference rows: mean log spectrum and mean MFCC. Both conditions: held-out utterances "
        "of training speakers (test-seen) and unseen speakers (test-unseen). Writes "
        "speech_eval.json and speech_eval.md.",
        "example:\n  dsvae evaluate speech runs/speech-f16-factorised runs/speech-f16-full "
        "--data data/speech --out eval/speech",
    )
    e.add_argument(
        "runs",
        type=Path,
        nargs="*",
        help="run folders or saved model folders (none: reference rows only)",
    )
    e.add_argument(
        "--data", type=Path, required=True, help="speech data set folder (dsvae data speech)"
    )
    e.add_argument("--out", type=Path, required=True, help="folder for the tables")
    e.set_defaults(func=cmd_evaluate_speech)

    v = add(
        evaluate_kinds,
        "conversion",
        "measure male<->female voice conversion: f0 shift, digit kept, speaker changed",
        "Convert test takes of every FSDD training speaker's digits to the Allison voice and "
        "Allison's digits to each speaker (the target always says another digit), through "
        "Griffin-Lim. Measures the median f0 shift toward the target (pyin), whether a digit "
        "classifier trained on real training spectra still recognises the digit, and whether mu_f "
        "of the conversion is closer to the target speaker than to the source. Writes "
        "conversion_eval.json/.md, figure6.png and example WAVs.",
        "example:\n  dsvae evaluate conversion runs/speech-f16-factorised --data data/speech "
        "--fsdd ../shared/data/fsdd --allison ../shared/data/allison --out eval/conversion",
    )
    v.add_argument("run", type=Path, help="run folder or saved model folder")
    v.add_argument("--data", type=Path, required=True, help="the speech data set it was trained on")
    v.add_argument("--fsdd", type=Path, required=True, help="FSDD folder")
    v.add_argument("--allison", type=Path, required=True, help="Allison folder")
    v.add_argument("--out", type=Path, required=True, help="folder for the report")
    v.add_argument(
        "--takes", type=int, default=1, help="test takes per digit and speaker (default 1)"
    )
    v.add_argument("--iterations", type=int, default=60, help="Griffin-Lim iterations (default 60)")
    v.add_argument("--seed", type=int, default=0, help="seed (classifier, Griffin-Lim)")
    v.set_defaults(func=cmd_evaluate_conversion)

    c = add(
        sub,
        "convert",
        "voice conversion: the words of one recording in the voice of another (Fig. 6)",
        "Encode both recordings, decode z_1:T of each with f of the other (f averaged over the "
        "recording's segments), undo the normalisation and invert the spectra with Griffin-Lim. "
        "Writes source_to_target.wav, target_to_source.wav, the two reconstructions, and the "
        "four-panel spectrogram figure (source, target, source->target, target->source).",
        "example:\n  dsvae convert runs/speech-f16-factorised --data data/speech "
        "--source ../shared/data/fsdd/recordings/3_theo_0.wav "
        "--target ../shared/data/allison/digits/3.wav --out eval/convert",
    )
    c.add_argument("run", type=Path, help="run folder or saved model folder")
    c.add_argument(
        "--data", type=Path, required=True, help="the speech data set the model was trained on"
    )
    c.add_argument("--source", type=Path, required=True, help="WAV whose content is kept")
    c.add_argument("--target", type=Path, required=True, help="WAV whose voice is taken")
    c.add_argument("--out", type=Path, required=True, help="folder for the WAVs and the figure")
    c.add_argument(
        "--iterations", type=int, default=100, help="Griffin-Lim iterations (default 100)"
    )
    c.add_argument("--seed", type=int, default=0, help="seed of Griffin-Lim's initial phases")
    c.set_defaults(func=cmd_convert)


def _utterances(args: argparse.Namespace):
    from dsvae.data import speech

    utterances, notes = [], []
    if not any((args.fsdd, args.allison, args.timit, args.folder)):
        raise DsvaeError("name at least one source: --fsdd, --allison, --timit or --folder")
    if (args.speaker_regex or args.speaker_csv) and not args.folder:
        raise DsvaeError("--speaker-regex and --speaker-csv apply to --folder only")
    if args.holdout is not None and not 0 <= args.holdout < 1:
        raise DsvaeError(f"--holdout must be in [0, 1), got {args.holdout}")
    if args.unseen and args.fsdd and args.folder:
        raise DsvaeError("--unseen applies to one of --fsdd and --folder; build them separately")
    if args.fsdd:
        utterances += speech.fsdd_utterances(args.fsdd, _or(args.unseen, speech.FSDD_UNSEEN))
    if args.allison:
        utterances += speech.allison_utterances(args.allison, _or(args.holdout, 0.1), args.seed)
    if args.timit:
        utterances += speech.timit_utterances(args.timit, _or(args.holdout, 0.125), args.seed)
    if args.folder:
        found, skipped = speech.folder_utterances(
            args.folder,
            speaker_regex=args.speaker_regex,
            speaker_csv=args.speaker_csv,
            holdout=_or(args.holdout, 0.1),
            unseen=args.unseen or (),
            seed=args.seed,
        )
        utterances += found
        if skipped:
            notes.append(
                f"skipped {skipped} WAV files in {args.folder} that the speaker rule does not cover"
            )
    return utterances, notes


def _or(value, default):
    return default if value is None else value


def cmd_data_speech(args: argparse.Namespace) -> None:
    from dsvae.data.speech import build_speech

    utterances, notes = _utterances(args)
    for note in notes:
        print(note)
    counts = Counter(u.split for u in utterances)
    print(
        "utterances: "
        + ", ".join(f"{s} {counts[s]}" for s in ("train", "test-seen", "test-unseen"))
    )
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
    from dsvae.data import SequenceDataset

    for path in out.values():
        ds = SequenceDataset(path)
        print(f"wrote {path}: {len(ds)} segments of {ds.length} x {ds.frame_shape[0]}")


def cmd_evaluate_speech(args: argparse.Namespace) -> None:
    from dsvae.eval.speech import evaluate_speech

    report = evaluate_speech(args.runs, args.data, args.out)
    print(report["markdown"])
    print(f"wrote {args.out / 'speech_eval.json'} and {args.out / 'speech_eval.md'}")


def cmd_convert(args: argparse.Namespace) -> None:
    from dsvae.eval.conversion import convert_files

    if args.iterations < 1:
        raise DsvaeError(f"--iterations must be at least 1, got {args.iterations}")
    paths = convert_files(
        args.run,
        args.data,
        args.source,
        args.target,
        args.out,
        n_iter=args.iterations,
        seed=args.seed,
    )
    print("wrote:")
    for path in paths:
        print(f"  {path}")


def cmd_evaluate_conversion(args: argparse.Namespace) -> None:
    from dsvae.eval.conversion_eval import evaluate_conversion

    if not 1 <= args.takes <= 5:
        raise DsvaeError(f"--takes must be in 1..5 (FSDD's test takes), got {args.takes}")
    report = evaluate_conversion(
        args.run,
        args.data,
        args.fsdd,
        args.allison,
        args.out,
        takes=args.takes,
        n_iter=args.iterations,
        seed=args.seed,
    )
    print(report["markdown"])
    print(f"wrote {args.out / 'conversion_eval.json'}, {args.out / 'figure6.png'} and example WAVs")
