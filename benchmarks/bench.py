"""Training and inference throughput of dsvae against a naive step, side by side.

One process, one run: for each config, the naive step (benchmarks/naive.py) and
ours train the same network on the same batches, in alternating rounds, so a
noisy machine slows both alike and the ratio stays meaningful. Then inference
(encode + feature swap of N sequences) and prior sampling (f ~ p(f),
z_1:T ~ p(z_1:T), decoded), ours against the naive way; with --fold-bn also ours
on a copy of the model with its batch norms folded into the convolutions
(dsvae.model.fold.fold_batch_norm), timed in the same rounds.

    python benchmarks/bench.py --configs sprites-cpu --batch 32 --json out/cpu.json --markdown out/cpu.md
    python benchmarks/bench.py --configs sprites --batch 128 --device cuda --json out/h100.json

Frames are random uint8 (images) or Gaussian float32 (vectors) of the config's
shape: throughput does not depend on what the pixels show.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from naive import NaiveStep, host_frames  # noqa: E402

from dsvae import ops  # noqa: E402
from dsvae.config import load_config  # noqa: E402
from dsvae.data import prepare_frames  # noqa: E402
from dsvae.model import build_model  # noqa: E402
from dsvae.model.fold import fold_batch_norm  # noqa: E402

SHAPES = {"sprites": [3, 64, 64], "sprites-cpu": [3, 64, 64], "quickstart": [1, 32, 32]}
LENGTHS = {"sprites": 8, "sprites-cpu": 8}
TINY = [
    "model.f_dim=8",
    "model.z_dim=4",
    "model.hidden_dim=16",
    "model.frames.channels=[8,8]",
    "model.frames.strides=[2,2]",
    "model.frames.hidden=[]",
    "model.frames.feature_dim=16",
]


class FastStep:
    """Our training step: the one ``dsvae train`` runs (see dsvae.train.module)."""

    def __init__(self, model, lr, device, *, bf16, channels_last, compile_model, fused) -> None:
        self.model = model.to(device)
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        # compile_model: a torch.compile mode ("default", "reduce-overhead": CUDA graphs) or None
        self.forward = (
            torch.compile(self.model, mode=compile_model) if compile_model else self.model
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, fused=fused)
        self.autocast = lambda: torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            loss = self.model.loss(self.forward(prepare_frames(batch, self.channels_last)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()  # no host synchronisation


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def make_data(frame_shape, length, n, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if len(frame_shape) == 3:
        c, h, w = frame_shape
        return rng.integers(0, 256, (n, length, h, w, c), dtype=np.uint8)
    return rng.standard_normal((n, length, frame_shape[0])).astype(np.float32)


def timed(fn, steps: int, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        fn(i)
    synchronize(device)
    return time.perf_counter() - start


def train_flops_per_sequence(cfg, data: np.ndarray) -> float:
    """FLOPs of one training step (forward + backward) per sequence, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg.model)
    batch = torch.from_numpy(data[:2])
    with FlopCounterMode(display=False) as counter:
        model.loss(model(prepare_frames(batch))).backward()
    return counter.get_total_flops() / 2


def bench_training(cfg, args, device, data: np.ndarray) -> dict:
    torch.manual_seed(0)
    model = build_model(cfg.model)
    twin = build_model(cfg.model)
    twin.load_state_dict(model.state_dict())
    naive = NaiveStep(twin, cfg.train.lr, device)
    fast = FastStep(
        model,
        cfg.train.lr,
        device,
        bf16=args.bf16,
        channels_last=args.channels_last and len(cfg.model.frame_shape) == 3,
        compile_model=args.compile_mode if args.compile else None,
        fused=args.fused_adam,
    )
    b = args.batch
    batches = [data[i * b : (i + 1) * b] for i in range(len(data) // b)]
    on_device = torch.from_numpy(data).to(device)  # uint8 kept on the device
    device_batches = [on_device[i * b : (i + 1) * b] for i in range(len(batches))]

    run_naive = lambda i: naive(batches[i % len(batches)])  # noqa: E731
    run_fast = lambda i: fast(device_batches[i % len(batches)])  # noqa: E731
    start = time.perf_counter()
    timed(run_fast, args.warmup, device)  # includes compilation when --compile
    compile_s = time.perf_counter() - start
    timed(run_naive, args.warmup, device)
    rates = {"naive": [], "ours": []}
    memory = {}
    for r in range(args.rounds):
        order = [("naive", run_naive), ("ours", run_fast)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            reset_peak(device)
            rates[name].append(args.steps * b / timed(fn, args.steps, device))
            memory[name] = max(memory.get(name, 0.0), peak_memory_mb(device))
    naive_rate, ours_rate = statistics.median(rates["naive"]), statistics.median(rates["ours"])
    flops = train_flops_per_sequence(cfg, data)
    achieved = ours_rate * flops / 1e12
    return {
        "gflop_per_sequence": flops / 1e9,
        "ours_tflop_per_s": achieved,
        "fraction_of_peak": achieved / args.peak_tflops if args.peak_tflops else None,
        "naive_seq_per_s": naive_rate,
        "ours_seq_per_s": ours_rate,
        "ratio": ours_rate / naive_rate,
        "rounds": rates,
        "warmup_s": compile_s,
        "peak_memory_mb": memory,
    }


@torch.no_grad()
def bench_inference(cfg, args, device, data: np.ndarray) -> dict:
    """Encode + swap every sequence (pairs within a batch) and prior sampling, both ways
    (and ours with folded batch norm under --fold-bn)."""
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).eval()
    channels_last = args.channels_last and len(cfg.model.frame_shape) == 3
    autocast = lambda: torch.autocast(device.type, torch.bfloat16, enabled=args.bf16)  # noqa: E731
    b = args.infer_batch
    n = (args.infer_sequences // b) * b
    n = max(n, b)
    source = np.resize(data, (n, *data.shape[1:]))
    on_device = torch.from_numpy(source).to(device)
    length = data.shape[1]

    def swap_naive() -> None:
        for s in range(0, n, b):
            x = host_frames(source[s : s + b]).to(device)
            ops.swap(model, x[: b // 2], x[b // 2 : 2 * (b // 2)])

    def swap_ours(net) -> None:
        with autocast():
            for s in range(0, n, b):
                x = prepare_frames(on_device[s : s + b], channels_last)
                ops.swap(net, x[: b // 2], x[b // 2 : 2 * (b // 2)])

    def sample_naive() -> None:
        prior = NaiveStep(model, 1e-3, device).prior
        for _ in range(0, n, b):
            z_prev = torch.zeros(b, cfg.model.z_dim, device=device)
            h = c = torch.zeros(b, cfg.model.hidden_dim, device=device)
            zs = []
            for _t in range(length):
                h, c = prior.cell(z_prev, (h, c))
                p = prior.head(h)
                loc, raw = p.chunk(2, -1)
                z_prev = loc + torch.nn.functional.softplus(raw) * torch.randn_like(loc)
                zs.append(z_prev)
            ops.decode(model, torch.stack(zs, 1), model.sample_f(b))

    def sample_ours(net) -> None:
        with autocast():
            for _ in range(0, n, b):
                ops.generate(net, b, length)

    if channels_last:
        model.to(memory_format=torch.channels_last)
    folded = fold_batch_norm(model) if args.fold_bn else None
    results = {}
    for name, naive_fn, ours_fn in (
        ("swap", swap_naive, swap_ours),
        ("prior_sampling", sample_naive, sample_ours),
    ):
        variants = [("naive", naive_fn), ("ours", lambda fn=ours_fn: fn(model))]
        if folded is not None:
            variants.append(("folded_bn", lambda fn=ours_fn: fn(folded)))
        for _key, fn in variants:  # warm-up
            fn()
        times = {key: [] for key, _fn in variants}
        for r in range(args.rounds):  # each round starts with the next variant
            shift = r % len(variants)
            for key, fn in variants[shift:] + variants[:shift]:
                times[key].append(timed(lambda _i, fn=fn: fn(), 1, device))
        rates = {key: n / statistics.median(t) for key, t in times.items()}
        results[name] = {
            "sequences": n,
            "naive_seq_per_s": rates["naive"],
            "ours_seq_per_s": rates["ours"],
            "ratio": rates["ours"] / rates["naive"],
            "seconds": times,
        }
        if folded is not None:
            results[name]["folded_bn_seq_per_s"] = rates["folded_bn"]
            results[name]["folded_bn_over_ours"] = rates["folded_bn"] / rates["ours"]
    return results


def machine(device: torch.device) -> dict:
    info = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "date": datetime.date.today().isoformat(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    if device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(device)
    return info


def markdown(report: dict) -> str:
    lines = [
        f"{report['machine']['device_name'] if 'device_name' in report['machine'] else report['machine']['cpu']}, "
        f"torch {report['machine']['torch']}, {report['machine']['threads']} threads, "
        f"{report['machine']['date']}; settings: {report['settings']}",
        "",
        "| config | work | batch | naive seq/s | ours seq/s | ours / naive | peak memory naive / ours (MB) | ours TFLOP/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in report["configs"].items():
        t = r["training"]
        mem = t["peak_memory_mb"]
        peak = f" ({t['fraction_of_peak']:.0%} of peak)" if t["fraction_of_peak"] else ""
        lines.append(
            f"| {name} | training step ({t['gflop_per_sequence']:.1f} GFLOP/seq) | "
            f"{report['settings']['batch']} | {t['naive_seq_per_s']:.1f} "
            f"| {t['ours_seq_per_s']:.1f} | **{t['ratio']:.2f}x** | {mem['naive']:.0f} / {mem['ours']:.0f} "
            f"| {t['ours_tflop_per_s']:.3f}{peak} |"
        )
        for work, i in r.get("inference", {}).items():
            lines.append(
                f"| {name} | {work.replace('_', ' ')} ({i['sequences']} seq) | "
                f"{report['settings']['infer_batch']} | {i['naive_seq_per_s']:.1f} | "
                f"{i['ours_seq_per_s']:.1f} | {i['ratio']:.2f}x | | |"
            )
            if "folded_bn_seq_per_s" in i:
                lines.append(
                    f"| {name} | {work.replace('_', ' ')}, folded BN ({i['sequences']} seq; "
                    f"{i['folded_bn_over_ours']:.2f}x ours) | {report['settings']['infer_batch']} "
                    f"| {i['naive_seq_per_s']:.1f} | {i['folded_bn_seq_per_s']:.1f} "
                    f"| {i['folded_bn_seq_per_s'] / i['naive_seq_per_s']:.2f}x | | |"
                )
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["sprites-cpu"], help="shipped config names")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    p.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (median)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--infer-sequences", type=int, default=2664)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--no-inference", action="store_true")
    p.add_argument(
        "--fold-bn",
        action="store_true",
        help="also time inference with batch norm folded into the convolutions",
    )
    p.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast for ours (default: on with CUDA)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC convolutions for ours (default: on with CUDA)",
    )
    p.add_argument(
        "--fused-adam",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fused Adam for ours (default: on with CUDA)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile our model")
    p.add_argument(
        "--compile-mode",
        default="default",
        choices=["default", "reduce-overhead", "max-autotune"],
        help="torch.compile mode with --compile (reduce-overhead: CUDA graphs on a GPU)",
    )
    p.add_argument("--threads", type=int, default=None, help="CPU threads")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak, to report the fraction reached (H100 bf16 dense: 990)",
    )
    p.add_argument("--tiny", action="store_true", help="shrink the networks (for tests)")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--markdown", type=Path, help="write the table here")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    cuda = device.type == "cuda"
    for name in ("bf16", "channels_last", "fused_adam"):
        if getattr(args, name) is None:
            setattr(args, name, cuda)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    settings = {
        k: getattr(args, k)
        for k in (
            "batch",
            "steps",
            "rounds",
            "bf16",
            "channels_last",
            "fused_adam",
            "compile",
            "compile_mode",
        )  # fmt: skip
    }
    settings["infer_batch"] = args.infer_batch
    settings["fold_bn"] = args.fold_bn
    report = {"machine": machine(device), "settings": settings, "configs": {}}
    for name in args.configs:
        shape = SHAPES.get(name)
        overrides = [f"model.frame_shape={shape}".replace(" ", "")] if shape else []
        cfg = load_config(name, [*overrides, *(TINY if args.tiny else [])])
        length = LENGTHS.get(name, 8)
        data = make_data(cfg.model.frame_shape, length, args.batch * 4)
        entry = {"training": bench_training(cfg, args, device, data)}
        if not args.no_inference:
            entry["inference"] = bench_inference(cfg, args, device, data)
        report["configs"][name] = entry
        print(f"{name}: {json.dumps(entry['training'], default=float)[:200]}", flush=True)
    report["markdown"] = markdown(report)
    print(report["markdown"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(report["markdown"] + "\n")
    return report


if __name__ == "__main__":
    main()
