"""Metrics on classifier outputs: pure functions, arrays in, Python floats out.

``p_*`` arguments are class probabilities ``(N, K)``: one row per frame (attributes) or per
sequence (action), each row summing to 1. They may be numpy arrays or torch tensors.

* Table 1 of the paper (Sec. 4.1, "Quantitative analysis"): :func:`disagreement`,
  :func:`kl_recon` (KL[p_recon || p_data]) and :func:`kl_random` (KL[p_random || p_data]).
* The protocol of later work on Sprites (e.g. S3VAE, Zhu et al. 2020): accuracy of the judge
  on generated sequences, the inception score, and the entropies H(y|x) and H(y).

All logarithms are natural, so KLs and entropies are in nats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

ROW_SUM_TOL = 1e-4
"""How far a row of probabilities may sum from 1 (float32 softmax is well inside this)."""


def _as_array(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array, got {type(x).__name__}") from err
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(
            f"{name} must have shape (N, K) with N, K >= 1 (one row per example), "
            f"got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _as_probs(p: Any, name: str) -> np.ndarray:
    """``p`` as float64 (N, K); ValueError unless every row is a probability vector."""
    p = _as_array(p, name)
    if (p < 0).any():
        raise ValueError(f"{name} has negative entries; pass probabilities (softmax of logits)")
    sums = p.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)
    if bad.size:
        raise ValueError(
            f"{name}: rows must sum to 1, but row {bad[0]} sums to {sums[bad[0]]:.6g} "
            f"({bad.size} of {len(p)} rows off); pass probabilities (softmax of logits)"
        )
    return p


def _same_shape(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names} must have the same shape (N, K), got {a.shape} and {b.shape}")


def _kl_rows(p: np.ndarray, q: np.ndarray, eps: float) -> np.ndarray:
    """KL[p_i || q_i] for each row, with 0 log 0 = 0 and q clamped at ``eps``."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    log_ratio = np.log(np.maximum(p, eps)) - np.log(np.maximum(q, eps))
    return np.where(p > 0, p * log_ratio, 0.0).sum(axis=1)


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    """Shannon entropy of each row in nats, with 0 log 0 = 0."""
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=1)


def disagreement(p_recon: Any, p_data: Any) -> float:
    """Fraction of rows whose most likely class differs (Table 1, "disagreement").

    ``argmax p_recon(i) != argmax p_data(i)`` counted over the N rows, e.g. frames of
    reconstructed and original test sequences. 0 means every prediction is kept.
    """
    p_recon, p_data = _as_probs(p_recon, "p_recon"), _as_probs(p_data, "p_data")
    _same_shape(p_recon, p_data, "p_recon and p_data")
    return float(np.mean(p_recon.argmax(axis=1) != p_data.argmax(axis=1)))


def kl_recon(p_recon: Any, p_data: Any, eps: float = 1e-12) -> float:
    """Mean over rows of KL[p_recon || p_data] in nats (Table 1, "KL-recon").

    ``p_data`` is clamped at ``eps`` so that a class it rules out costs a large but finite
    amount instead of infinity.
    """
    p_recon, p_data = _as_probs(p_recon, "p_recon"), _as_probs(p_data, "p_data")
    _same_shape(p_recon, p_data, "p_recon and p_data")
    return float(_kl_rows(p_recon, p_data, eps).mean())


def kl_random(p_data: Any, eps: float = 1e-12) -> float:
    """Mean over rows of KL[p_random || p_data], p_random uniform (Table 1, "KL-random").

    The reference a KL-recon is compared with: what a reconstruction that kept nothing
    (a uniform guess over the K classes) would score.
    """
    p_data = _as_probs(p_data, "p_data")
    uniform = np.full_like(p_data, 1.0 / p_data.shape[1])
    return float(_kl_rows(uniform, p_data, eps).mean())


def accuracy(probs_or_logits: Any, labels: Any) -> float:
    """Fraction of rows whose argmax equals the label (the judge's accuracy).

    Later work reports the judge's accuracy on generated sequences against the labels of the
    sequences they were made from. Rows may be probabilities or logits (argmax is the same).
    """
    scores = _as_array(probs_or_logits, "probs_or_logits")
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.shape != (scores.shape[0],):
        raise ValueError(
            f"labels must have shape (N,) = ({scores.shape[0]},) to match the scores "
            f"{scores.shape}, got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
    k = scores.shape[1]
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(
            f"labels must be class indices in 0..{k - 1}, got values in "
            f"{labels.min()}..{labels.max()}"
        )
    return float(np.mean(scores.argmax(axis=1) == labels))


def inception_score(p_y_given_x: Any) -> float:
    """exp(E_x KL[p(y|x) || p(y)]), p(y) the mean of the rows (later-work protocol).

    Between 1 (every row the same) and K (confident rows, spread evenly over the K classes).
    """
    p = _as_probs(p_y_given_x, "p_y_given_x")
    marginal = p.mean(axis=0, keepdims=True)  # (1, K)
    return float(np.exp(_kl_rows(p, np.broadcast_to(marginal, p.shape), 1e-300).mean()))


def conditional_entropy(p: Any) -> float:
    """H(y|x): mean entropy of the rows in nats (later-work protocol; low means confident)."""
    return float(_entropy_rows(_as_probs(p, "p")).mean())


def marginal_entropy(p: Any) -> float:
    """H(y): entropy of the mean row in nats (later-work protocol; ln K means balanced)."""
    marginal = _as_probs(p, "p").mean(axis=0, keepdims=True)  # (1, K)
    return float(_entropy_rows(marginal)[0])


def pixel_error(predicted: Any, target: Any, threshold: float = 0.5) -> float:
    """Fraction of wrongly predicted pixels after binarising both at ``threshold`` (Sec. 4.3, Fig. 8).

    ``predicted`` and ``target`` are arrays of the same shape, e.g. frames (B, T, C, H, W)
    of probabilities or binary values.
    """
    if isinstance(predicted, torch.Tensor):
        predicted = predicted.detach().cpu().numpy()
    if isinstance(target, torch.Tensor):
        target = target.detach().cpu().numpy()
    predicted, target = np.asarray(predicted), np.asarray(target)
    if predicted.shape != target.shape or predicted.size == 0:
        raise ValueError(
            f"predicted and target must have the same non-empty shape, got {predicted.shape} and {target.shape}"
        )
    return float(np.mean((predicted >= threshold) != (target >= threshold)))
