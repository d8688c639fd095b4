"""``dsvae reconstruct``, ``generate``, ``swap``, ``impute`` and ``convert``: a trained model at work."""

from __future__ import annotations

import argparse

from dsvae.cli.common import add, add_path, add_run, add_seed, int_list, say
from dsvae.errors import DsvaeError


def register_pictures(sub) -> None:
    """The four picture operations of Fig. 3 and Sec. 4.3, one subcommand each."""
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
        p = add(
            sub,
            name,
            help_text,
            f"{help_text[0].upper()}{help_text[1:]}. Writes a PNG grid "
            "(and a GIF for image data) and prints the paths.",
            example,
        )
        add_run(p)
        add_path(p, "--out", "folder for the pictures")
        p.add_argument("--n", type=int, default=6, help="number of sequences (default 6)")
        add_seed(p)
        if needs_data:
            add_path(p, "--data", "data set folder to draw from")
            p.add_argument(
                "--indices",
                type=int_list,
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
    say(write_reconstructions(model, x, args.out))


def cmd_generate(args: argparse.Namespace) -> None:
    from dsvae.model import load_model
    from dsvae.showcase import write_generations
    from dsvae.train.run import training_length

    model = load_model(args.run)
    length = args.length or training_length(args.run) or 16
    if args.n < 1 or length < 1:
        raise DsvaeError(f"--n and --length must be at least 1, got {args.n} and {length}")
    print("wrote:")
    say(write_generations(model, args.n, length, args.out, seed=args.seed))


def cmd_swap(args: argparse.Namespace) -> None:
    from dsvae.showcase import write_swap

    model, x = _model_and_batch(args)
    if x.shape[0] < 2:
        raise DsvaeError("swap needs at least two sequences; raise --n or pass more --indices")
    half = x.shape[0] // 2
    print("wrote:")
    say(write_swap(model, x[:half], x[half : 2 * half], args.out))


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
    say(write_imputation(model, x, mask, args.out, seed=args.seed))


def register_convert(sub) -> None:
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
    add_run(c)
    add_path(c, "--data", "the speech data set the model was trained on")
    add_path(c, "--source", "WAV whose content is kept")
    add_path(c, "--target", "WAV whose voice is taken")
    add_path(c, "--out", "folder for the WAVs and the figure")
    c.add_argument(
        "--iterations", type=int, default=100, help="Griffin-Lim iterations (default 100)"
    )
    add_seed(c, "seed of Griffin-Lim's initial phases")
    c.set_defaults(func=cmd_convert)


def cmd_convert(args: argparse.Namespace) -> None:
    from dsvae.convert import convert_files

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
    say(paths)
