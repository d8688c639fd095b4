"""Speaker verification metrics (Section 4.2, Table 2): pure functions on arrays.

A trial compares two utterances by the cosine similarity of their embeddings and
accepts "same speaker" when it exceeds a threshold. The equal error rate (EER) is the
error at the threshold where false acceptances and false rejections are equally frequent
(Dehak et al., 2009; the paper's Table 2).
"""

from __future__ import annotations

import numpy as np


def cosine_scores(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine similarity of every pair i < j of ``embeddings`` (U, E); also i and j.

    A zero embedding has cosine 0 with everything.
    """
    e = np.asarray(embeddings, np.float64)
    if e.ndim != 2 or e.shape[0] < 2:
        raise ValueError(f"need at least two embeddings (U, E), got shape {e.shape}")
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    unit = np.divide(e, norm, out=np.zeros_like(e), where=norm > 0)
    i, j = np.triu_indices(e.shape[0], k=1)
    return np.einsum("pe,pe->p", unit[i], unit[j]), i, j


def trial_labels(speakers: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """True for the pairs (i, j) spoken by the same speaker."""
    speakers = np.asarray(speakers)
    return speakers[i] == speakers[j]


def equal_error_rate(scores: np.ndarray, same_speaker: np.ndarray) -> float:
    """EER of the trials ``scores`` (higher = more alike) with truth ``same_speaker``.

    The ROC is traced over every distinct threshold (ties move together), and the EER is
    read where the false rejection rate (1 - TPR) meets the false acceptance rate (FPR),
    interpolating linearly between the two ROC points that bracket the crossing.
    Perfectly separated scores give 0; scores that carry no information (all equal)
    give 0.5.
    """
    scores = np.asarray(scores, np.float64).ravel()
    same = np.asarray(same_speaker, bool).ravel()
    if scores.shape != same.shape:
        raise ValueError(f"scores {scores.shape} and labels {same.shape} differ in length")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    n_pos, n_neg = int(same.sum()), int((~same).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(
            f"the EER needs same-speaker and different-speaker trials, got {n_pos} and {n_neg}"
        )
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], same[order]
    last = np.r_[np.diff(s) != 0, True]  # the last trial of each run of equal scores
    tp = np.r_[0, np.cumsum(y)[last]]
    fp = np.r_[0, np.cumsum(~y)[last]]
    fnr, fpr = 1.0 - tp / n_pos, fp / n_neg  # FNR falls from 1, FPR rises from 0
    gap = fnr - fpr
    k = int(np.argmax(gap <= 0))  # first point at or past the crossing; gap[0] = 1 > 0
    t = gap[k - 1] / (gap[k - 1] - gap[k])
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))
