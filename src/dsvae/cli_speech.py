"""Speech subcommands of ``dsvae`` (Section 4.2): ``data speech``, ``data synth-speech``,
``evaluate speech``, ``evaluate conversion``, ``convert``."""

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
    register_synth_speech(data_kinds, add)

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
        "measure voice conversion: f0 shift, digit kept, speaker changed",
        "Real speech (--fsdd and --allison): convert test takes of every FSDD training "
        "speaker's digits to the Allison voice and Allison's digits to each speaker. "
        "Synthetic speech (a --data folder from `dsvae data synth-speech`, no --fsdd): pair "
        "the voices of --split across the f0 range (voice i of n, sorted by f0, with voice "
        "i + n/2) and convert each one's digits to its partner's voice. The target always "
        "says another word. Through Griffin-Lim, measures the median f0 shift toward the "
        "target (pyin), whether a digit classifier trained on the training spectra still "
        "recognises the digit, and whether mu_f of the conversion is closer to the target "
        "speaker than to the source. Writes conversion_eval.json/.md, figure6.png and "
        "example WAVs.",
        "examples:\n  dsvae evaluate conversion runs/speech-f16-factorised --data data/speech "
        "--fsdd ../shared/data/fsdd --allison ../shared/data/allison --out eval/conversion\n"
        "  dsvae evaluate conversion runs/synth-f16 --data data/synth --split test-unseen "
        "--out eval/synth-conversion",
    )
    v.add_argument("run", type=Path, help="run folder or saved model folder")
    v.add_argument("--data", type=Path, required=True, help="the speech data set it was trained on")
    v.add_argument("--fsdd", type=Path, help="FSDD folder (real pairs; with --allison)")
    v.add_argument("--allison", type=Path, help="Allison folder (real pairs; with --fsdd)")
    v.add_argument("--out", type=Path, required=True, help="folder for the report")
    v.add_argument(
        "--takes", type=int, default=1, help="real pairs: test takes per digit and speaker (1)"
    )
    v.add_argument(
        "--split",
        choices=("test-seen", "test-unseen"),
        default="test-seen",
        help="synthetic pairs: the voices of this split (default test-seen)",
    )
    v.add_argument(
        "--per-voice", type=int, default=10, help="synthetic pairs: sources per voice (10)"
    )
    v.add_argument("--iterations", type=int, default=60, help="Griffin-Lim iterations (default 60)")
    v.add_argument("--seed", type=int, default=0, help="seed (classifier, Griffin-Lim, pairs)")
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


def register_synth_speech(data_kinds, add) -> None:
    """Add ``data synth-speech``: the parser and its handler, in one place."""
    from dsvae.data import synth_speech as sy

    def ints(text: str) -> list[int]:
        try:
            return [int(v) for v in _names(text)]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected integers like 60,95: {text!r}") from err

    p = add(
        data_kinds,
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
        type=_names,
        default=_names(default_voices),
        metavar="V,V",
        help=f"espeak-ng voice variants (`espeak-ng --voices=variant`; default {default_voices})",
    )
    for gender, pitches in (("male", sy.MALE_PITCHES), ("female", sy.FEMALE_PITCHES)):
        p.add_argument(
            f"--{gender}-pitches",
            type=ints,
            default=list(pitches),
            metavar="P,P",
            help=f"espeak-ng -p settings (0-99) for {gender} variants "
            f"(default {','.join(map(str, pitches))})",
        )
    p.add_argument(
        "--speeds",
        type=ints,
        default=list(sy.SPEEDS),
        metavar="S,S",
        help=f"espeak-ng -s settings, words per minute (default {','.join(map(str, sy.SPEEDS))})",
    )
    words = ",".join(sy.DIGIT_WORDS + sy.EXTRA_WORDS)
    p.add_argument(
        "--words", type=_names, default=_names(words), help=f"words said (default {words})"
    )
    p.add_argument("--takes", type=int, default=4, help="takes of each word per voice (default 4)")
    p.add_argument("--pitch-jitter", type=int, default=4, help="± -p per take (default 4)")
    p.add_argument("--speed-jitter", type=int, default=10, help="± -s per take (default 10)")
    p.add_argument(
        "--unseen",
        type=_names,
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

    def run(args: argparse.Namespace) -> None:
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
        from dsvae.data import SequenceDataset

        for split, path in out.items():
            if split != "wav":
                ds = SequenceDataset(path)
                print(f"wrote {path}: {len(ds)} segments of {ds.length} x {ds.frame_shape[0]}")
        print(f"wrote {out['wav']}: the WAVs and {sy.UTTERANCES_FILE}")

    p.set_defaults(func=run)


def _utterances(args: argparse.Namespace):
    from dsvae.data import speech

    utterances, notes = [], []
    if not any((args.fsdd, args.allison, args.timit, args.folder, args.synth)):
        raise DsvaeError(
            "name at least one source: --fsdd, --allison, --timit, --folder or --synth"
        )
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
    if args.synth:
        from dsvae.data.synth_speech import synth_utterances

        utterances += synth_utterances(args.synth / "wav")
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
    if (args.fsdd is None) != (args.allison is None):
        raise DsvaeError("the real pairs need both --fsdd and --allison")
    if args.fsdd is None:
        from dsvae.eval.synth_conversion import evaluate_synth_conversion

        if args.per_voice < 1:
            raise DsvaeError(f"--per-voice must be at least 1, got {args.per_voice}")
        report = evaluate_synth_conversion(
            args.run,
            args.data,
            args.out,
            split=args.split,
            per_voice=args.per_voice,
            n_iter=args.iterations,
            seed=args.seed,
        )
    else:
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
