"""``dsvae evaluate KIND``: the paper's protocols (Sprites, bouncing ball, speech, conversion)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dsvae.cli.common import add, add_path, add_run, add_seed
from dsvae.errors import DsvaeError


def register(sub) -> None:
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
    _sprites(kinds)
    _bouncing_ball(kinds)
    _speech(kinds)
    _conversion(kinds)


def _sprites(kinds) -> None:
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
    add_run(es)
    add_path(es, "--judge", "judge folder (dsvae judge sprites)")
    add_path(es, "--data", "Sprites folder or its test/ split")
    add_path(es, "--out", "folder for the tables and figures")
    add_seed(es)
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
    print(report["markdown"])
    print(f"wrote {args.out / 'sprites_eval.json'} and {len(report['figures'])} figures")


def _bouncing_ball(kinds) -> None:
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
    add_path(eb, "--data", "test data set folder")
    add_path(eb, "--out", "folder for curves and figures")
    eb.add_argument(
        "--observed", type=int, default=20, help="observed frames in Fig. 7 (default 20)"
    )
    eb.add_argument("--limit", type=int, default=None, help="use only the first N test sequences")
    eb.set_defaults(func=cmd_evaluate_bouncing_ball)


def cmd_evaluate_bouncing_ball(args: argparse.Namespace) -> None:
    from dsvae.eval.bouncing_ball import evaluate_bouncing_ball

    report = evaluate_bouncing_ball(
        args.runs, args.data, args.out, observed=args.observed, limit=args.limit
    )
    print(report["markdown"])
    print(f"wrote {args.out}: curves.json, curves.csv, figure7.png, figure8.png")


def _speech(kinds) -> None:
    e = add(
        kinds,
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
    add_path(e, "--data", "speech data set folder (dsvae data speech)")
    add_path(e, "--out", "folder for the tables")
    e.set_defaults(func=cmd_evaluate_speech)


def cmd_evaluate_speech(args: argparse.Namespace) -> None:
    from dsvae.eval.speech import evaluate_speech

    report = evaluate_speech(args.runs, args.data, args.out)
    print(report["markdown"])
    print(f"wrote {args.out / 'speech_eval.json'} and {args.out / 'speech_eval.md'}")


def _conversion(kinds) -> None:
    v = add(
        kinds,
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
    add_run(v)
    add_path(v, "--data", "the speech data set it was trained on")
    v.add_argument("--fsdd", type=Path, help="FSDD folder (real pairs; with --allison)")
    v.add_argument("--allison", type=Path, help="Allison folder (real pairs; with --fsdd)")
    add_path(v, "--out", "folder for the report")
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
    add_seed(v, "seed (classifier, Griffin-Lim, pairs)")
    v.set_defaults(func=cmd_evaluate_conversion)


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
        from dsvae.eval.conversion import evaluate_conversion

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
