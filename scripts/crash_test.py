#!/usr/bin/env python
"""Kill a training run with SIGKILL again and again; check that nothing is lost.

    python scripts/crash_test.py --out /tmp/crash --kills 5 --seed 0

Builds a small bouncing-ball set and trains a tiny model twice through the ``dsvae
train`` command line: once without interruption (the reference), and once killed with
SIGKILL ``--kills`` times and continued with ``--resume`` after each kill. Kills alternate
between a random moment and the middle of a checkpoint write (checkpoint files are written
slowly, in chunks, so that a kill can land inside one). After every kill it checks that

(a) every checkpoint on disk loads (with ``weights_only=True``);
(b) the resumed run starts from the newest complete checkpoint (``last.ckpt``, or an
    ``epochNNNN.ckpt`` when the kill came between the two writes of one save): the same
    step counter, the next epoch and the same Adam step count, i.e. the optimiser state
    came back with the weights;

and at the end (c) that the final model equals the reference within ``--atol``, and that
both logged the same steps. It prints one line per kill and a JSON report, writes the
report to OUT/report.json, and exits 1 if any check failed. Takes 2-4 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

TINY = [
    "model.f_dim=4",
    "model.z_dim=3",
    "model.hidden_dim=16",
    "model.frames.channels=[8,8]",
    "model.frames.strides=[2,2]",
    "model.frames.feature_dim=32",
    "train.batch_size=16",
    "train.lr=0.003",
    "train.progress_bar=false",
    "train.log_every_n_steps=2",
    "train.checkpoint_every_n_epochs=1",
]
CHUNKS, CHUNK_PAUSE_S = 8, 0.03  # a checkpoint write takes about 0.25 s


# ----------------------------------------------------------------------------- the child


def child(argv: list[str]) -> int:
    """``dsvae`` itself, with slow checkpoint writes and a note of where training starts."""
    import io

    import lightning.pytorch as pl
    import torch

    import dsvae.train.run as run
    from dsvae.cli import main

    real_save = torch.save

    def slow_save(obj, f, *args, **kwargs):  # write the bytes in chunks, pausing between
        if not isinstance(f, str | os.PathLike):
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        step = len(data) // CHUNKS + 1
        with open(f, "wb") as fh:
            for i in range(0, len(data), step):
                fh.write(data[i : i + step])
                fh.flush()
                time.sleep(CHUNK_PAUSE_S)

    class StartNote(pl.Callback):
        def on_train_start(self, trainer, pl_module):
            opt = trainer.optimizers[0].state_dict()["state"]
            adam = int(next(iter(opt.values()))["step"]) if opt else 0
            note = {"step": trainer.global_step, "epoch": trainer.current_epoch, "adam": adam}
            with open(os.environ["CRASH_TEST_NOTES"], "a") as fh:
                fh.write(json.dumps(note) + "\n")
                fh.flush()
                os.fsync(fh.fileno())

    torch.save = slow_save
    build = run.build_trainer
    run.build_trainer = lambda config, run_dir, extra=None: build(
        config, run_dir, [*(extra or []), StartNote()]
    )
    return main(argv)


# ----------------------------------------------------------------------------- the parent


def dsvae_train(work: Path, run: str, epochs: int, resume: bool, note: str) -> subprocess.Popen:
    args = ["train", "quickstart", "--data", str(work / "data"), "--out", str(work / run)]
    args += [x for s in [*TINY, f"train.max_epochs={epochs}"] for x in ("--set", s)]
    env = {
        **os.environ,
        "CRASH_TEST_NOTES": str(work / note),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    cmd = [sys.executable, __file__, "--child", *args, *(["--resume"] if resume else [])]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def load_checkpoint(path: Path) -> dict:
    from dsvae.train.checkpoints import AtomicCheckpointIO

    state = AtomicCheckpointIO().load_checkpoint(path)
    opt = state["optimizer_states"][0]["state"]
    adam = int(next(iter(opt.values()))["step"]) if opt else 0
    return {"step": int(state["global_step"]), "epoch": int(state["epoch"]), "adam": adam}


def newest_checkpoint(run: Path) -> dict | None:
    """Step, epoch and Adam step of the newest checkpoint on disk (what --resume uses)."""
    states = [load_checkpoint(p) for p in (run / "checkpoints").glob("*.ckpt")]
    return max(states, key=lambda c: c["step"], default=None)


def check_checkpoints(run: Path) -> dict:
    """(a) every checkpoint loads; Adam's step count equals the global step in each."""
    files = sorted((run / "checkpoints").glob("*.ckpt"))
    loaded = {p.name: load_checkpoint(p) for p in files}  # raises if one does not load
    return {
        "files": len(files),
        "all_load": True,
        "optimizer_in_step": all(c["adam"] == c["step"] for c in loaded.values()),
        "stale_tmp": len(list((run / "checkpoints").glob(".*.tmp"))),
        "last": loaded.get("last.ckpt"),
    }


def wait_for_write(run: Path, proc: subprocess.Popen, timeout: float, stale: set) -> bool:
    """Poll until a checkpoint is being written (a new temporary file has some bytes)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        tmp = [p for p in (run / "checkpoints").glob(".*.ckpt.*.tmp") if p.name not in stale]
        if any(p.stat().st_size > 0 for p in tmp if p.exists()):
            return True
        time.sleep(0.002)
    return False


def kill_once(work: Path, k: int, mode: str, rng: random.Random, timing: dict, epochs: int):
    run = work / "crash"
    before = newest_checkpoint(run)
    stale = {p.name for p in (run / "checkpoints").glob(".*.tmp")}  # the resume removes them
    proc = dsvae_train(work, "crash", epochs, before is not None, f"start-{k}.json")
    started = time.monotonic()
    if mode == "write":
        wait_for_write(run, proc, timing["total"] * 2, stale)
    else:  # a random moment while training runs, before the run could end
        left = epochs - (before["epoch"] if before else 0)
        low = timing["startup"] + 0.3 * timing["epoch"]
        time.sleep(rng.uniform(low, low + 0.6 * max(1, left - 1) * timing["epoch"]))
    if proc.poll() is not None:
        raise SystemExit(f"kill {k}: the run ended before it could be killed; add --epochs")
    writing = [p.name for p in (run / "checkpoints").glob(".*.tmp") if p.name not in stale]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    note = work / f"start-{k}.json"
    return {
        "kill": k,
        "mode": mode,
        "resumed_from": before,
        "started_at": json.loads(note.read_text()) if note.is_file() else None,
        "after_s": round(time.monotonic() - started, 2),
        "during_write": bool(writing),  # a new checkpoint file was half-written
        "tmp_files_at_kill": writing,
        **check_checkpoints(run),
    }


def run_reference(work: Path, epochs: int) -> tuple[float, float]:
    """Train without interruption; return (seconds to the first checkpoint, total seconds)."""
    proc = dsvae_train(work, "reference", epochs, resume=False, note="start-reference.json")
    start, first = time.monotonic(), None
    while proc.poll() is None:
        if first is None and any((work / "reference" / "checkpoints").glob("*.ckpt")):
            first = time.monotonic() - start
        time.sleep(0.01)
    out = proc.stdout.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed:\n{out}")
    return first or 0.0, time.monotonic() - start


def compare_models(work: Path) -> dict:
    from safetensors.torch import load_file

    a = load_file(str(work / "reference" / "model" / "model.safetensors"))
    b = load_file(str(work / "crash" / "model" / "model.safetensors"))
    diff = max(float((a[k] - b[k]).abs().max()) for k in a) if a.keys() == b.keys() else None
    return {"same_tensors": a.keys() == b.keys(), "max_abs_diff": diff}


def resumed(checkpoint: dict, start: dict) -> bool:
    """A run resumed from an end-of-epoch checkpoint starts the next epoch at its step."""
    return (start["step"], start["adam"], start["epoch"]) == (
        checkpoint["step"],
        checkpoint["adam"],
        checkpoint["epoch"] + 1,
    )


def logged_steps(run: Path) -> list[int]:
    import csv

    with open(run / "metrics.csv", newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh) if r["train/elbo"]]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="work folder (created)")
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs (default 5)")
    p.add_argument("--epochs", type=int, default=30, help="epochs of the run (default 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill times (default 0)")
    p.add_argument("--atol", type=float, default=1e-5, help="tolerance on the final weights")
    args = p.parse_args()
    from dsvae.data import make_bouncing_ball_dataset

    work = args.out
    work.mkdir(parents=True, exist_ok=False)
    make_bouncing_ball_dataset(work / "data", n=96, length=6, size=16, seed=0)
    first, total = run_reference(work, args.epochs)
    epoch = (total - first) / max(1, args.epochs - 1)
    timing = {"startup": max(0.0, first - epoch), "epoch": epoch, "total": total}
    print(f"reference: first checkpoint after {first:.1f} s, done after {total:.1f} s")
    rng = random.Random(args.seed)
    kills = []
    for k in range(1, args.kills + 1):
        mode = "write" if k % 2 == 0 else "random"
        kills.append(kill_once(work, k, mode, rng, timing, args.epochs))
        last = kills[-1]["last"]
        print(f"kill {k} ({mode}) after {kills[-1]['after_s']} s: last.ckpt at step "
              f"{last and last['step']}, {kills[-1]['files']} checkpoints load, "
              f"during a write: {kills[-1]['during_write']}")  # fmt: skip
    before = newest_checkpoint(work / "crash")
    final = dsvae_train(work, "crash", args.epochs, resume=True, note="start-final.json")
    out = final.communicate()[0].decode(errors="replace")
    # (b) each resumed run that got as far as training started at the newest checkpoint
    starts = [(k["resumed_from"], k["started_at"]) for k in kills if k["resumed_from"]]
    starts.append((before, json.loads((work / "start-final.json").read_text())))
    report = {
        "kills": kills,
        "final_exit": final.returncode,
        "final_checkpoints": check_checkpoints(work / "crash"),
        "resumes_checked": sum(1 for _, got in starts if got is not None),
        "resumed_from_last_checkpoint": all(
            got is None or resumed(want, got) for want, got in starts
        ),
        "model": compare_models(work) if final.returncode == 0 else None,
        "same_logged_steps": logged_steps(work / "crash") == logged_steps(work / "reference"),
    }
    model = report["model"] or {}
    report["passed"] = bool(
        final.returncode == 0
        and all(k["all_load"] and k["optimizer_in_step"] for k in kills)
        and report["resumed_from_last_checkpoint"]
        and sum(k["during_write"] for k in kills) >= args.kills // 2
        and model.get("max_abs_diff") is not None
        and model["max_abs_diff"] <= args.atol
        and report["same_logged_steps"]
    )
    (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "kills"}, indent=2))
    if final.returncode != 0:
        print(out[-3000:])
    print("PASSED" if report["passed"] else "FAILED", f"({args.kills} kills)")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2:]))
    sys.exit(main())
