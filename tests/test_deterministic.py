"""The deterministic-dynamics baselines of Section 4.3 (LSTM-f and LSTM-c)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from dsvae import ops
from dsvae.config import load_config
from dsvae.errors import ConfigError
from dsvae.model import DSVAE, DeterministicSequenceVAE, build_model, load_model, save_model

TINY = [
    "model.f_dim=4",
    "model.z_dim=6",
    "model.hidden_dim=12",
    "model.frames.channels=[4,4]",
    "model.frames.strides=[2,2]",
    "model.frames.feature_dim=16",
    "model.frame_shape=[1,16,16]",
]


def tiny(dynamics: str, *extra: str) -> DeterministicSequenceVAE:
    torch.manual_seed(0)
    return build_model(load_config(None, [f"model.dynamics={dynamics}", *TINY, *extra]).model)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(3, 7, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def test_registry_builds_the_right_class():
    assert isinstance(tiny("stochastic"), DSVAE)
    assert isinstance(tiny("lstm-f"), DeterministicSequenceVAE)
    with pytest.raises(ConfigError, match="model.dynamics must be one of"):
        load_config(None, ["model.dynamics=gru"])
    with pytest.raises(ConfigError, match="use build_model"):
        DSVAE(load_config(None, ["model.dynamics=lstm-c", *TINY]).model)


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_elbo_terms(dynamics, x):
    model = tiny(dynamics)
    out = model(x, generator=torch.Generator().manual_seed(0))
    assert out.z.shape == (3, 6) and out.f.shape == (3, 4)  # one global z per sequence
    prior = Independent(Normal(torch.zeros(3, 6), torch.ones(3, 6)), 1)
    torch.testing.assert_close(out.terms["kl_z"], kl_divergence(out.q_z, prior).mean())
    recon = out.p_x.log_prob(x).sum(1).mean()
    torch.testing.assert_close(out.terms["elbo"], recon - out.terms["kl_f"] - out.terms["kl_z"])
    out.terms["elbo"].backward()
    assert model.dynamics.lstm.weight_hh_l0.grad.abs().sum() > 0


def test_lstm_f_starts_from_z_and_has_no_input():
    model = tiny("lstm-f")
    z = torch.randn(2, 6)
    dyn = model.dynamics
    h0, c0 = dyn.init(z).chunk(2, dim=-1)
    cell = nn.LSTMCell(1, 12)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in dyn.lstm.state_dict().items()})
    h, c, ref = torch.tanh(h0), c0, []
    for _ in range(5):
        h, c = cell(torch.zeros(2, 1), (h, c))
        ref.append(h)
    torch.testing.assert_close(dyn(z, 5), torch.stack(ref, 1))


def test_lstm_c_reads_z_at_every_step():
    model = tiny("lstm-c")
    z = torch.randn(2, 6)
    dyn = model.dynamics
    cell = nn.LSTMCell(6, 12)
    cell.load_state_dict({k.replace("_l0", ""): v for k, v in dyn.lstm.state_dict().items()})
    h = c = torch.zeros(2, 12)
    ref = []
    for _ in range(5):
        h, c = cell(z, (h, c))  # h_0 = 0, input z each step
        ref.append(h)
    torch.testing.assert_close(dyn(z, 5), torch.stack(ref, 1))


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_imputation_uses_only_observed_frames(dynamics, x):
    model = tiny(dynamics).eval()
    hidden = x.clone()
    hidden[:, 4:] = torch.rand(3, 3, 1, 16, 16)
    torch.testing.assert_close(
        ops.impute(model, x, observed=4), ops.impute(model, hidden, observed=4)
    )
    mask = torch.tensor([[1, 0, 1, 0, 1, 1, 0]] * 3, dtype=torch.bool)
    hidden = x.clone()
    hidden[~mask] = 0.5
    torch.testing.assert_close(ops.impute(model, x, mask), ops.impute(model, hidden, mask))
    torch.testing.assert_close(ops.impute(model, x, observed=7), ops.reconstruct(model, x))


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_save_load_round_trip(dynamics, x, tmp_path):
    model = tiny(dynamics).eval()
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, DeterministicSequenceVAE) and loaded.config.dynamics == dynamics
    torch.testing.assert_close(
        ops.reconstruct(loaded, x), ops.reconstruct(model, x), rtol=0, atol=0
    )


def test_trains_through_lightning(tmp_path):
    from dsvae.data import make_bouncing_ball_dataset
    from dsvae.train import train

    data = make_bouncing_ball_dataset(tmp_path / "ball", n=24, length=5, size=16, seed=0)
    overrides = [o for o in TINY if "frame_shape" not in o]
    config = load_config(
        "quickstart",
        ["model.dynamics=lstm-c", *overrides, "train.max_epochs=1", "train.progress_bar=false"],
    )
    result = train(config, data, tmp_path / "run")
    assert isinstance(result.model, DeterministicSequenceVAE) and result.global_step == 1
    assert isinstance(load_model(tmp_path / "run"), DeterministicSequenceVAE)
