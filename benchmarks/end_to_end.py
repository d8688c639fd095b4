"""``dsvae train`` end to end against its own training step, side by side in one process.

A step benchmark counts only the step; a user waits for the whole run: the start,
validation passes, checkpoints, pictures. This script runs, in alternating rounds,
``benchmarks/bench.py``'s step (the one ``dsvae train`` runs) on batches of the data and
``dsvae.train.run.train`` for ``--steps`` steps under each named setting, and reports
each setting's end-to-end sequences per second as a fraction of the step's, with the
seconds by stage that ``summary.json`` records (``time_s``: start-up, steps, validation,
checkpoints, the rest) and the time per epoch.

    python benchmarks/end_to_end.py --config sprites-cpu --data data/sprites/train \\
        --steps 300 --rounds 2 --threads 2 --json out/e2e.json --markdown out/e2e.md
    python benchmarks/end_to_end.py --config quickstart --sequences 256 --steps 20 --tiny

The default settings are ``before`` (validation on the whole validation split every
epoch, checkpoints written on the training thread: what ``dsvae train`` did before
``train.val_max_batches`` and ``train.async_checkpoints``) and ``shipped`` (the config as
it is); ``--setting NAME=KEY=VALUE,KEY=VALUE`` adds others. Without ``--data`` the frames
are random uint8 of the config's shape (the speed does not depend on the pixels), with a
random validation split (``train.val_group=null``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import LENGTHS, SHAPES, TINY, FastStep, machine, make_data, timed  # noqa: E402

from dsvae.config import load_config  # noqa: E402
from dsvae.data.storage import read_frames, write_dataset  # noqa: E402
from dsvae.model import build_model  # noqa: E402
from dsvae.train.run import train  # noqa: E402

BEFORE = [
    "train.val_max_batches=null",
    "train.val_every_n_epochs=1",
    "train.async_checkpoints=false",
]


def parse_setting(text: str) -> tuple[str, list[str]]:
    """``NAME=KEY=VALUE,KEY=VALUE`` (or ``NAME=`` for the config as it is)."""
    name, sep, rest = text.partition("=")
    if not name or not sep:
        raise argparse.ArgumentTypeError(f"--setting must be NAME=KEY=VALUE,..., got {text!r}")
    return name, [o for o in rest.split(",") if o]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="sprites-cpu", help="a shipped config name or a YAML")
    p.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run")
    p.add_argument("--data", type=Path, help="a dsvae data set folder (default: random frames)")
    p.add_argument("--sequences", type=int, default=2048, help="random data: how many")
    p.add_argument("--steps", type=int, default=100, help="training steps per run")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (median)")
    p.add_argument("--step-steps", type=int, default=20, help="steps per timed step round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before the step rounds")
    p.add_argument("--setting", action="append", type=parse_setting, default=[])
    p.add_argument("--threads", type=int, help="CPU threads")
    p.add_argument("--tiny", action="store_true", help="shrink the network (for tests)")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--markdown", type=Path, help="write the table here")
    return p.parse_args(argv)


def _data(args, cfg, work: Path) -> Path:
    if args.data is not None:
        return args.data
    shape = cfg.model.frame_shape or SHAPES.get(args.config, [1, 32, 32])
    frames = make_data(shape, LENGTHS.get(args.config, 8), args.sequences)
    meta = {"name": "random", "source": "benchmarks/end_to_end.py", "seed": 0, "licence": "none"}
    return write_dataset(work / "data", frames, {}, meta)


def step_rate(cfg, frames: np.ndarray, args, device: torch.device) -> float:
    """Sequences per second of the training step alone, on batches of the data."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model)
    cuda = device.type == "cuda"
    step = FastStep(
        model,
        cfg.train.lr,
        device,
        bf16=cuda,
        channels_last=cuda and len(cfg.model.frame_shape) == 3,
        compile_model=cfg.train.compile_mode if cfg.train.torch_compile else None,
        fused=cuda,
    )
    b = cfg.train.batch_size
    batches = [
        torch.from_numpy(np.array(frames[i * b : (i + 1) * b])).to(device)
        for i in range(max(1, min(8, len(frames) // b)))
    ]
    run = lambda i: step(batches[i % len(batches)])  # noqa: E731
    timed(run, args.warmup, device)
    return args.step_steps * b / timed(run, args.step_steps, device)


def train_once(cfg_path: str, overrides: list[str], data: Path, out: Path) -> dict:
    cfg = load_config(cfg_path, overrides)
    train(cfg, data, out)
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    # an epoch's worth of this run's time: validation and checkpoints come once per epoch
    epochs = summary["global_step"] / summary["steps_per_epoch"]
    return {
        "sequences_per_s": summary["sequences_per_s"],
        "steps": summary["global_step"],
        "epochs": summary["epochs"],
        "time_s": summary["time_s"],
        "seconds_per_epoch": summary["time_s"]["total"] / epochs,
    }


def markdown(report: dict) -> str:
    step = report["step_seq_per_s"]
    lines = [
        f"step alone: {step:,.1f} seq/s (median of {len(report['step_rounds'])} rounds)",
        "",
        "| setting | end-to-end seq/s | of the step | s / epoch | startup s | steps s "
        "| validation s | checkpoints s | other s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in report["settings"].items():
        t = entry["time_s"]
        per_epoch = entry["seconds_per_epoch"]
        lines.append(
            f"| {name} | {entry['sequences_per_s']:,.1f} | {entry['fraction_of_step']:.1%} | "
            f"{'—' if per_epoch is None else f'{per_epoch:,.1f}'} | {t['startup']:.1f} | "
            f"{t['steps']:.1f} | {t['validation']:.1f} | {t['checkpoints']:.1f} | {t['other']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    common = [*args.set, *(TINY if args.tiny else [])]
    if args.threads:
        common.append(f"train.threads={args.threads}")
    if args.data is None:
        common.append("train.val_group=null")
    settings = dict([("before", BEFORE), ("shipped", []), *args.setting])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dsvae-e2e-") as tmp:
        work = Path(tmp)
        cfg = load_config(args.config, common)
        data = _data(args, cfg, work)
        frames = read_frames(data)
        if cfg.model.frame_shape is None and frames.ndim == 5:
            n, t, h, w, c = frames.shape
            common.append(f"model.frame_shape=[{c},{h},{w}]")
            cfg = load_config(args.config, common)
        steps, runs = [], {name: [] for name in settings}
        for r in range(args.rounds):
            steps.append(step_rate(cfg, frames, args, device))
            order = list(settings.items())
            for name, overrides in order if r % 2 == 0 else order[::-1]:
                run_overrides = [
                    *common,
                    *overrides,
                    f"train.max_steps={args.steps}",
                    "train.max_time_minutes=null",
                    "train.max_epochs=1000",
                    "train.progress_bar=false",
                ]
                out = work / f"run-{name}-{r}"
                runs[name].append(train_once(args.config, run_overrides, data, out))
                print(
                    f"round {r} {name}: {runs[name][-1]['sequences_per_s']:.1f} seq/s", flush=True
                )
        steps.append(step_rate(cfg, frames, args, device))  # and once after the last round
        step = statistics.median(steps)
        report = {
            "machine": machine(device),
            "config": args.config,
            "overrides": common,
            "data": str(args.data) if args.data else f"random ({args.sequences} sequences)",
            "steps_per_run": args.steps,
            "step_seq_per_s": step,
            "step_rounds": steps,
            "settings": {},
        }
        for name, entries in runs.items():
            best = sorted(entries, key=lambda e: e["sequences_per_s"])[len(entries) // 2]
            report["settings"][name] = {
                **best,
                "overrides": settings[name],
                "fraction_of_step": best["sequences_per_s"] / step,
                "rounds": [e["sequences_per_s"] for e in entries],
            }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    report["markdown"] = markdown(report)
    print(report["markdown"])
    for path, text in (
        (args.json, json.dumps(report, indent=2) + "\n"),
        (args.markdown, report["markdown"] + "\n"),
    ):
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return report


if __name__ == "__main__":
    main()
