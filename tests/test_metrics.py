"""The metrics of Table 1 and of later work, on inputs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dsvae.eval.metrics import (
    accuracy,
    conditional_entropy,
    disagreement,
    inception_score,
    kl_random,
    kl_recon,
    marginal_entropy,
)


def random_probs(n: int, k: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(size=(n, k)) * 2
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def one_hots(labels: list[int], k: int) -> np.ndarray:
    return np.eye(k)[labels]


# ----------------------------------------------------------------------------- Table 1


def test_identical_predictions_disagree_nowhere_and_have_zero_kl():
    p = random_probs(50, 6, seed=0)
    assert disagreement(p, p) == 0.0
    assert kl_recon(p, p) == pytest.approx(0.0, abs=1e-12)


def test_disagreement_counts_rows_whose_argmax_differs():
    p_data = one_hots([0, 1, 2, 3], 4)
    p_recon = one_hots([0, 1, 3, 2], 4) * 0.7 + 0.3 / 4  # same argmax as the one-hots
    assert disagreement(p_recon, p_data) == 0.5
    assert disagreement(p_data[::-1], p_data) == 1.0


def test_kl_recon_matches_a_hand_computation():
    p_recon = np.array([[0.5, 0.5], [0.9, 0.1]])
    p_data = np.array([[0.25, 0.75], [0.1, 0.9]])
    row0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    row1 = 0.9 * math.log(9) + 0.1 * math.log(1 / 9)  # = 0.8 ln 9
    assert kl_recon(p_recon, p_data) == pytest.approx((row0 + row1) / 2, rel=1e-12)


def test_kl_recon_of_a_one_hot_is_the_negative_log_probability_of_its_class():
    p_data = random_probs(20, 5, seed=1)
    labels = np.arange(20) % 5
    expected = -np.log(p_data[np.arange(20), labels]).mean()
    assert kl_recon(one_hots(labels.tolist(), 5), p_data) == pytest.approx(expected, rel=1e-12)


def test_kl_recon_clamps_classes_that_p_data_rules_out_at_eps():
    p_recon, p_data = np.array([[0.5, 0.5]]), np.array([[1.0, 0.0]])
    expected = 0.5 * math.log(0.5) + 0.5 * (math.log(0.5) - math.log(1e-6))
    assert kl_recon(p_recon, p_data, eps=1e-6) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="eps"):
        kl_recon(p_recon, p_data, eps=0.0)


def test_kl_random_is_zero_for_a_uniform_p_data():
    assert kl_random(np.full((7, 9), 1 / 9)) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("k", [6, 9])
def test_kl_random_of_confident_p_data_has_its_closed_form(k):
    delta = 1e-4
    row = np.full(k, delta)
    row[0] = 1 - (k - 1) * delta
    # KL[u || p] = -ln K - (1/K) sum_i ln p_i
    expected = -math.log(k) - (math.log(1 - (k - 1) * delta) + (k - 1) * math.log(delta)) / k
    assert kl_random(np.tile(row, (3, 1))) == pytest.approx(expected, rel=1e-10)
    assert expected > 5  # large, as in the KL-random column of Table 1


def test_kl_random_of_exact_one_hots_uses_eps():
    k, eps = 6, 1e-12
    expected = -math.log(k) - (k - 1) * math.log(eps) / k
    assert kl_random(one_hots([0, 3, 5], k), eps=eps) == pytest.approx(expected, rel=1e-12)


def test_metrics_take_torch_tensors():
    p = random_probs(10, 4, seed=2)
    q = random_probs(10, 4, seed=3)
    t_p, t_q = torch.tensor(p, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)
    assert kl_recon(t_p, t_q) == pytest.approx(kl_recon(p, q), rel=1e-5)
    assert disagreement(t_p, t_q) == disagreement(p, q)
    assert isinstance(kl_random(t_q), float)


# ----------------------------------------------------------------------------- later-work protocol


def test_accuracy_on_known_labels():
    labels = np.array([0, 1, 2, 2])
    logits = np.array([[5.0, 0, 0], [0, 3, 0], [1, 0, 0], [0, 0, 2]])  # third is wrong
    assert accuracy(logits, labels) == 0.75
    assert accuracy(torch.tensor(logits), torch.tensor(labels)) == 0.75
    assert accuracy(one_hots([0, 1, 2, 2], 3), labels) == 1.0


def test_inception_score_of_confident_evenly_spread_predictions_is_k():
    k = 9
    assert inception_score(one_hots(list(range(k)) * 3, k)) == pytest.approx(k, rel=1e-12)


def test_inception_score_of_identical_predictions_is_one():
    row = random_probs(1, 5, seed=4)
    assert inception_score(np.tile(row, (12, 1))) == pytest.approx(1.0, rel=1e-12)


def test_entropies_of_balanced_one_hots():
    k = 6
    p = one_hots(list(range(k)) * 2, k)
    assert marginal_entropy(p) == pytest.approx(math.log(k), rel=1e-12)
    assert conditional_entropy(p) == 0.0


def test_entropies_of_uniform_rows_and_the_is_identity():
    k = 4
    uniform = np.full((5, k), 1 / k)
    assert conditional_entropy(uniform) == pytest.approx(math.log(k), rel=1e-12)
    assert marginal_entropy(uniform) == pytest.approx(math.log(k), rel=1e-12)
    # ln IS = H(y) - H(y|x), the mutual information between x and y
    p = random_probs(40, 5, seed=5)
    assert math.log(inception_score(p)) == pytest.approx(
        marginal_entropy(p) - conditional_entropy(p), rel=1e-9
    )


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("p", "match"),
    [
        (np.ones(4) / 4, "shape"),
        (np.ones((2, 3, 4)) / 4, "shape"),
        (np.zeros((0, 3)), "shape"),
        (np.array([[0.5, 0.6]]), "sum to 1"),
        (np.array([[1.5, -0.5]]), "negative"),
        (np.array([[np.nan, 1.0]]), "NaN"),
        ([["a", "b"]], "numeric"),
    ],
)
def test_bad_probabilities_raise_value_error(p, match):
    with pytest.raises(ValueError, match=match):
        kl_random(p)
    with pytest.raises(ValueError, match=match):
        conditional_entropy(p)


def test_mismatched_shapes_raise_value_error():
    with pytest.raises(ValueError, match="same shape"):
        disagreement(np.full((3, 4), 0.25), np.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="same shape"):
        kl_recon(np.full((3, 4), 0.25), np.full((2, 4), 0.25))


def test_accuracy_validates_labels():
    scores = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        accuracy(scores, np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        accuracy(scores, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="0..3"):
        accuracy(scores, np.array([0, 1, 4]))
