"""Sprites evaluation protocols (Section 4.1) that call the pure metrics.

* :func:`table1` is the paper's Table 1. With f encoded from each test sequence and
  z_1:T sampled from the prior, the judge's attribute predictions on the generated
  frames (p_recon) are compared with those on the data frames (p_data). With f
  sampled from the prior and z_1:T inferred, the same is done for the action.
* :func:`later_work` is the protocol of the papers that followed (S3VAE, C-DSVAE, ...).
  Keep z and sample f: the judge's action accuracy against the true label, the
  Inception Score, H(y|x) and H(y). Keep f and sample z: per-attribute accuracy.
* :func:`inferred_factors` is a diagnostic beside both, with f and z_1:T inferred and
  nothing sampled: the judge on reconstructions (what the autoencoder loses on its own)
  and on swaps between two test sequences (whether the other factor carries the row).
* :func:`probe` runs all three on a small set and returns one flat row of numbers: the
  in-training measurement (``dsvae.train.callbacks.DisentanglementProbe``) and the score
  of the ablation runner. :func:`~dsvae.eval.sprites_splits.validation_split` gives the
  validation characters of a run, so that choices never look at the test characters;
  :mod:`dsvae.eval.sprites_tables` holds the paper's numbers and the Markdown tables.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dsvae import ops
from dsvae.data import (
    SequenceDataset,
    SequenceSubset,
    model_batches,
    model_frames,
    require_same_frames,
)
from dsvae.errors import DataError
from dsvae.eval import metrics
from dsvae.eval.report import finish_report
from dsvae.eval.sprites_splits import (
    SPLIT_NAMES,
    resolve_test_split,
    run_train_config,
    validation_split,
)
from dsvae.eval.sprites_tables import (
    ACTION_PARTS,
    ATTRIBUTES,
    PAPER_TABLE1,
    inferred_factors_markdown,
    later_work_markdown,
    table1_markdown,
)
from dsvae.machine import resolve_device
from dsvae.model import DSVAE


@dataclass
class Batches:
    """The judge's view of one pass over the test set, accumulated batch by batch."""

    data: dict[str, list[torch.Tensor]]
    generated: dict[str, list[torch.Tensor]]
    labels: dict[str, list[torch.Tensor]]

    @classmethod
    def empty(cls) -> Batches:
        return cls({}, {}, {})

    def add(self, store: dict, probs: dict[str, torch.Tensor]) -> None:
        for name, p in probs.items():
            store.setdefault(name, []).append(p.reshape(-1, p.shape[-1]).float().cpu())

    def cat(self, store: dict, name: str) -> torch.Tensor:
        return torch.cat(store[name])


def iterate(
    dataset: SequenceDataset, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Model-space frames and the labels, ``batch_size`` sequences at a time, in order."""
    labels = dataset.labels
    for start, x in zip(
        range(0, len(dataset), batch_size),
        model_batches(dataset, batch_size, device=device),
        strict=True,
    ):
        stop = start + len(x)
        yield x, {k: torch.as_tensor(labels[k][start:stop]) for k in ("attributes", "action")}


def action_parts(p_action: torch.Tensor) -> dict[str, torch.Tensor]:
    """Marginals of the 9 action classes (..., 9): motion (..., 3) and direction (..., 3)."""
    grid = p_action.unflatten(-1, (3, 3))  # (..., motion, direction)
    return {"motion": grid.sum(-1), "direction": grid.sum(-2)}


def _judged(judge, frames: torch.Tensor) -> dict[str, torch.Tensor]:
    """The judge's probabilities by head: attributes per frame (B, T, K), action (B, 9)."""
    probs = judge.predict_proba(frames)
    return {name: probs[name] for name in (*ATTRIBUTES, "action")}


@torch.no_grad()
def table1(
    model: DSVAE,
    judge,
    dataset: SequenceDataset,
    *,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, dict[str, float]]:
    """Table 1 of the paper: disagreement, KL-recon and KL-random per attribute and action.

    The rows ``motion`` and ``direction`` split the action row into its two parts (not in
    the paper).
    """
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    keep_f, keep_z = Batches.empty(), Batches.empty()
    for x, _ in iterate(dataset, batch_size, device):
        p_data = _judged(judge, x)
        fixed_f = _judged(judge, ops.conditional_generate(model, x, "f", generator=gen))
        fixed_z = _judged(judge, ops.conditional_generate(model, x, "z", generator=gen))
        keep_f.add(keep_f.data, {k: p_data[k] for k in ATTRIBUTES})
        keep_f.add(keep_f.generated, {k: fixed_f[k] for k in ATTRIBUTES})
        keep_z.add(keep_z.data, {"action": p_data["action"]})
        keep_z.add(keep_z.generated, {"action": fixed_z["action"]})
    probs = {
        name: (keep_f.cat(keep_f.data, name), keep_f.cat(keep_f.generated, name))
        for name in ATTRIBUTES
    }
    probs["action"] = (keep_z.cat(keep_z.data, "action"), keep_z.cat(keep_z.generated, "action"))
    data_parts, recon_parts = action_parts(probs["action"][0]), action_parts(probs["action"][1])
    for part in ACTION_PARTS:
        probs[part] = (data_parts[part], recon_parts[part])
    return {
        name: {
            "disagreement": metrics.disagreement(p_recon, p_data),
            "kl_recon": metrics.kl_recon(p_recon, p_data),
            "kl_random": metrics.kl_random(p_data),
        }
        for name, (p_data, p_recon) in probs.items()
    }


@torch.no_grad()
def later_work(
    model: DSVAE,
    judge,
    dataset: SequenceDataset,
    *,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, float]:
    """Keep z, sample f: action Acc, IS, H(y|x), H(y). Keep f, sample z: attribute accuracy."""
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    store = Batches.empty()
    for x, labels in iterate(dataset, batch_size, device):
        fixed_z = _judged(judge, ops.conditional_generate(model, x, "z", generator=gen))
        fixed_f = _judged(judge, ops.conditional_generate(model, x, "f", generator=gen))
        store.add(store.generated, {"action": fixed_z["action"]})
        store.add(store.generated, {k: fixed_f[k] for k in ATTRIBUTES})
        t = x.shape[1]
        per_frame = labels["attributes"].unsqueeze(1).expand(-1, t, -1).reshape(-1, 4)  # (B*T, 4)
        store.labels.setdefault("action", []).append(labels["action"])
        for i, name in enumerate(ATTRIBUTES):
            store.labels.setdefault(name, []).append(per_frame[:, i])
    p_action = store.cat(store.generated, "action")
    result = {
        "action_acc": metrics.accuracy(p_action, store.cat(store.labels, "action")),
        "inception_score": metrics.inception_score(p_action),
        "h_y_given_x": metrics.conditional_entropy(p_action),
        "h_y": metrics.marginal_entropy(p_action),
    }
    labels = store.cat(store.labels, "action")
    parts = action_parts(p_action)
    result["motion_acc"] = metrics.accuracy(parts["motion"], labels // 3)
    result["direction_acc"] = metrics.accuracy(parts["direction"], labels % 3)
    for name in ATTRIBUTES:
        result[f"{name}_acc"] = metrics.accuracy(
            store.cat(store.generated, name), store.cat(store.labels, name)
        )
    return result


@torch.no_grad()
def inferred_factors(
    model: DSVAE, judge, dataset: SequenceDataset, *, batch_size: int = 128
) -> dict[str, dict[str, float]]:
    """Diagnostics with both factors inferred (posterior means), nothing sampled.

    ``"reconstruction"``: the judge's disagreement between x and its reconstruction,
    per attribute and action: what encoding and decoding lose on their own.
    ``"swap"``: f of test sequence i decoded with z_1:T of sequence (i + N/2) mod N (a
    different character in another action block): attributes against sequence i, the
    action against the donor. A swap row near the reconstruction row means the kept
    factor carries that row and the other factor does not; a swap row near the Table 1
    row means the error comes with the other factor, not with the prior's samples.
    """
    device = next(model.parameters()).device
    n = len(dataset)
    donors = (np.arange(n) + n // 2) % n
    heads = (*ATTRIBUTES, "action")
    rows = (*heads, *ACTION_PARTS)
    seen: dict[str, Batches] = {k: Batches.empty() for k in ("data", "recon", "swap", "donor")}

    def add(kind: str, frames: torch.Tensor) -> None:
        seen[kind].add(seen[kind].data, _judged(judge, frames))

    for start, (x, _) in zip(
        range(0, n, batch_size), iterate(dataset, batch_size, device), strict=True
    ):
        x_donor = model_frames(dataset.frames[donors[start : start + len(x)]], device)
        add("data", x)
        add("donor", x_donor)
        add("recon", ops.reconstruct(model, x))
        add("swap", ops.swap(model, x, x_donor)[0])
    probs = {kind: {name: b.cat(b.data, name) for name in heads} for kind, b in seen.items()}
    for kind in probs:
        probs[kind].update(action_parts(probs[kind]["action"]))
    swap_reference = {**probs["data"], **{k: probs["donor"][k] for k in ("action", *ACTION_PARTS)}}
    return {
        "reconstruction": {
            name: metrics.disagreement(probs["recon"][name], probs["data"][name]) for name in rows
        },
        "swap": {
            name: metrics.disagreement(probs["swap"][name], swap_reference[name]) for name in rows
        },
    }


PROBE_ROWS = (*ATTRIBUTES, "action", *ACTION_PARTS)


def probe_metric_names() -> tuple[str, ...]:
    """The columns :func:`probe` returns, in order (rates in [0, 1]).

    ``probe/<row>``: the Table 1 disagreement; ``probe/action_acc``: the later-work action
    accuracy; ``probe/swap_<row>`` and ``probe/recon_<row>``: the inferred-factor diagnostic.
    """
    return (
        *(f"probe/{r}" for r in PROBE_ROWS),
        "probe/action_acc",
        *(f"probe/swap_{r}" for r in PROBE_ROWS),
        *(f"probe/recon_{r}" for r in PROBE_ROWS),
    )


@torch.no_grad()
def probe(
    model: DSVAE,
    judge,
    dataset: SequenceDataset | SequenceSubset,
    *,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, float]:
    """Table 1, the later-work action Acc and the inferred-factor diagnostic as one flat row.

    The model is evaluated in eval mode and left in the mode it was in; the global random
    state is not touched (every sample comes from a generator seeded with ``seed``).
    """
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[]):
            rows = table1(model, judge, dataset, seed=seed, batch_size=batch_size)
            later = later_work(model, judge, dataset, seed=seed, batch_size=batch_size)
            diag = inferred_factors(model, judge, dataset, batch_size=batch_size)
    finally:
        model.train(was_training)
    result = {f"probe/{r}": rows[r]["disagreement"] for r in PROBE_ROWS}
    result["probe/action_acc"] = later["action_acc"]
    result.update({f"probe/swap_{r}": diag["swap"][r] for r in PROBE_ROWS})
    result.update({f"probe/recon_{r}": diag["reconstruction"][r] for r in PROBE_ROWS})
    return result


def evaluate_sprites(
    run: str | Path,
    judge_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    batch_size: int = 128,
    figures: bool = True,
    trajectory_sequences: int = 200,
    device: str | torch.device = "auto",
    split: str = "test",
) -> dict:
    """Table 1, the later-work protocol and Figures 3-4; writes JSON, Markdown and PNGs.

    ``device``: ``"auto"`` (a GPU when there is one), ``"cpu"`` or ``"cuda"``. The model
    and the judge run there in float32; the tables are reduced on the CPU.
    ``split``: ``"test"`` (the 296 test characters) or ``"val"``: the validation
    characters the run held out of ``DATA/train`` (:func:`validation_split`, from the run
    folder's config.yaml), for choosing settings without looking at the test split.
    """
    from dsvae.eval.figures import figure3, plot_trajectories, trajectories
    from dsvae.eval.judge import check_frame_shape, load_judge
    from dsvae.model import load_model

    start = time.perf_counter()
    out_dir = Path(out_dir)
    device = resolve_device(device)
    model, judge = load_model(run, device), load_judge(judge_dir, device)
    if split == "val":
        dataset = validation_split(data_dir, run_train_config(run))
    elif split == "test":
        dataset = resolve_test_split(data_dir)
    else:
        raise DataError(f"split must be 'test' or 'val', got {split!r}")
    require_same_frames(dataset.frame_shape, model.frame_shape, "evaluate on Sprites frames")
    check_frame_shape(judge, dataset.frame_shape)
    rows = table1(model, judge, dataset, seed=seed, batch_size=batch_size)
    later = later_work(model, judge, dataset, seed=seed, batch_size=batch_size)
    diag = inferred_factors(model, judge, dataset, batch_size=batch_size)
    pictures: list[Path] = []
    if figures:
        x = model_frames(dataset.frames[:: max(1, len(dataset) // 6)][:6], device)
        pictures += figure3(model, x, out_dir / "figures", seed=seed)
        for share in ("f", "z"):
            classes = trajectories(
                model, judge, share=share, length=dataset.length, n=trajectory_sequences, seed=seed
            )
            title = f"{trajectory_sequences} generated sequences sharing {share} (5 repeats)"
            pictures.append(
                plot_trajectories(
                    classes, out_dir / "figures" / f"figure4_shared_{share}.png", title=title
                )
            )
    report = {
        "table1": rows,
        "paper_table1": PAPER_TABLE1,
        "later_work": later,
        "inferred_factors": diag,
        "run": str(run),
        "judge": str(judge_dir),
        "data": str(dataset.path),
        "split": split,
        "test_sequences": len(dataset),
        "posterior": model.config.posterior,
        "seed": seed,
        "device": device.type,
        "trajectory_sequences": trajectory_sequences if figures else 0,
        "figures": [str(p) for p in pictures],
    }
    markdown = (
        f"# Sprites evaluation\n\nrun `{run}`, judge `{judge_dir}`, {len(dataset)} {SPLIT_NAMES[split]} sequences, "
        f"seed {seed}, {model.config.posterior} q\n\n## Table 1 protocol\n\n{table1_markdown(rows)}\n\n"
        f"## Later-work protocol\n\n{later_work_markdown(later)}\n\n"
        f"## Both factors inferred (diagnostic)\n\n{inferred_factors_markdown(diag, rows)}\n"
    )
    return finish_report(out_dir / "sprites_eval", report, markdown, start)
