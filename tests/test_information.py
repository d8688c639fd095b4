"""The minibatch estimate of I(f; z_1:T) and the train.mi_weight penalty."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

from dsvae.config import TrainConfig
from dsvae.errors import ConfigError
from dsvae.model import build_model
from dsvae.model.information import mi_penalty, mutual_information, pairwise_log_density


def _gaussian(loc: torch.Tensor, scale: float) -> Independent:
    return Independent(Normal(loc, torch.full_like(loc, scale)), 1)


def test_pairwise_log_density_matches_log_prob():
    g = torch.Generator().manual_seed(0)
    loc, z = torch.randn(3, 4, 2, generator=g), torch.randn(3, 4, 2, generator=g)
    dist = _gaussian(loc, 0.7)
    pairs = pairwise_log_density(dist, z)
    assert pairs.shape == (3, 3)
    for n in range(3):
        for m in range(3):
            expected = _gaussian(loc[m], 0.7).log_prob(z[n]).sum()
            torch.testing.assert_close(pairs[n, m], expected)


def test_no_information_gives_zero():
    """Posteriors that are the same for every sequence: nothing is shared through x."""
    g = torch.Generator().manual_seed(1)
    q_f, q_z = _gaussian(torch.zeros(16, 3), 1.0), _gaussian(torch.zeros(16, 5, 2), 1.0)
    f, z = torch.randn(16, 3, generator=g), torch.randn(16, 5, 2, generator=g)
    assert abs(mutual_information(q_f, f, q_z, z).item()) < 1e-5


def test_f_informative_but_z_not_gives_zero():
    g = torch.Generator().manual_seed(2)
    loc_f = 10 * torch.randn(16, 3, generator=g)
    q_f, q_z = _gaussian(loc_f, 0.01), _gaussian(torch.zeros(16, 5, 2), 1.0)
    z = torch.randn(16, 5, 2, generator=g)
    assert abs(mutual_information(q_f, loc_f, q_z, z).item()) < 1e-5


def test_both_identifying_the_sequence_gives_log_batch():
    g = torch.Generator().manual_seed(3)
    loc_f, loc_z = 10 * torch.randn(32, 3, generator=g), 10 * torch.randn(32, 5, 2, generator=g)
    mi = mutual_information(_gaussian(loc_f, 0.01), loc_f, _gaussian(loc_z, 0.01), loc_z)
    assert mi.item() == pytest.approx(math.log(32), abs=1e-4)


def test_agrees_with_the_gaussian_closed_form():
    """f = m + e1, z = m + e2 with m, e1, e2 ~ N(0, 1): I = -log(1 - 1/4) / 2 = 0.1438."""
    g = torch.Generator().manual_seed(0)
    m = torch.randn(4000, 1, generator=g)
    f, z = m + torch.randn(4000, 1, generator=g), m + torch.randn(4000, 1, generator=g)
    mi = mutual_information(_gaussian(m, 1.0), f, _gaussian(m.clone(), 1.0), z)
    assert mi.item() == pytest.approx(-0.5 * math.log(0.75), abs=0.02)


def test_penalty_gradient_moves_the_estimate_both_ways(tiny_model, tiny_frames):
    """Ascending the estimate makes f and z share information; the penalty then removes it."""
    model = tiny_model(kind="mlp", likelihood="gaussian")
    x = tiny_frames(model.config, batch=16, length=4, seed=4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)

    def penalty() -> tuple[torch.Tensor, torch.Tensor]:
        out = model(x, generator=torch.Generator().manual_seed(0))
        return mi_penalty(out.q_f, out.f, out.q_z, out.z)

    start = penalty()[1].item()
    for _ in range(40):
        opt.zero_grad()
        (-penalty()[1]).backward()
        opt.step()
    shared = penalty()[1].item()
    for _ in range(60):
        opt.zero_grad()
        penalty()[0].backward()
        opt.step()
    value, estimate = penalty()
    assert abs(start) < 0.1 and shared > 1.5, (start, shared)
    assert estimate.item() < 0.25 * shared, (shared, estimate.item())
    assert value.item() == max(estimate.item(), 0.0)  # clipped at 0, never below


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_works_with_a_global_z(dynamics, tiny_model_config, tiny_frames):
    """The LSTM-f / LSTM-c baselines have one z per sequence: the same estimate applies."""
    config = tiny_model_config(kind="mlp", likelihood="gaussian")
    config.dynamics = dynamics
    model = build_model(config)
    out = model(tiny_frames(config, batch=6, length=4))
    assert out.z.shape == (6, config.z_dim)
    mi = mutual_information(out.q_f, out.f, out.q_z, out.z)
    assert mi.shape == () and -0.1 <= mi.item() <= math.log(6) + 1e-4
    mi.backward()  # the gradient reaches both posteriors
    for net in (model.static_posterior, model.dynamics_posterior):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_bad_input():
    with pytest.raises(ValueError, match="does not match"):
        pairwise_log_density(_gaussian(torch.zeros(4, 3), 1.0), torch.zeros(4, 2))
    with pytest.raises(TypeError, match="expects a Normal"):
        pairwise_log_density(
            Independent(Bernoulli(probs=torch.full((4, 3), 0.5)), 1), torch.zeros(4, 3)
        )
    with pytest.raises(ConfigError, match="train.mi_weight must be >= 0"):
        TrainConfig(mi_weight=-1.0)


def test_mi_estimate_script(tmp_path):
    """scripts/mi_estimate.py reports the estimate of a saved model and its log B ceiling."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    from dsvae.config import load_config
    from dsvae.data import make_bouncing_ball_dataset
    from dsvae.model import save_model
    from tiny import TINY_MODEL

    data = make_bouncing_ball_dataset(tmp_path / "ball", n=12, length=4, size=16, seed=0)
    config = load_config("configs/quickstart.yaml", [*TINY_MODEL, "model.frame_shape=[1,16,16]"])
    torch.manual_seed(0)
    save_model(build_model(config.model), tmp_path / "run" / "model")
    script = Path(__file__).resolve().parents[1] / "scripts" / "mi_estimate.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run"), str(data), "--batches", "3"],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr
    found = re.search(
        r"estimate: (-?[\d.]+) nats .* 3 batches of 12\); ceiling log B = ([\d.]+)", done.stdout
    )
    assert found, done.stdout
    value, ceiling = map(float, found.groups())
    assert ceiling == pytest.approx(math.log(12), abs=1e-3) and -0.5 < value <= ceiling + 1e-3
