"""Tests of the DSVAE model (Section 2, Eqs. 1-4): shapes, ELBO terms, prior, saving."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

import dsvae.ops as ops
from conftest import Payload
from dsvae.config import ModelConfig
from dsvae.config_files import to_dict
from dsvae.errors import ConfigError, DataError, ModelFileError
from dsvae.model import DSVAE, load_model, save_model
from dsvae.model.distributions import MIN_SCALE

POSTERIORS = ["factorised", "full"]
KINDS = ["conv", "mlp"]
LIKELIHOODS = ["bernoulli", "gaussian", "gaussian-learned"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gaussian_kl(mu_q, s_q, mu_p, s_p) -> torch.Tensor:
    """KL[N(mu_q, s_q^2) || N(mu_p, s_p^2)] summed over the last dimension, written out."""
    vq, vp = s_q**2, s_p**2
    return (0.5 * (torch.log(vp / vq) + (vq + (mu_q - mu_p) ** 2) / vp - 1.0)).sum(-1)


def _perturb_prior(model: DSVAE, std: float = 0.5) -> None:
    """Large random prior weights, so that p(z_t | z_<t) depends strongly on z_<t."""
    with torch.no_grad():
        for p in model.prior.parameters():
            nn.init.normal_(p, std=std)


def _reference_cell(model: DSVAE) -> nn.LSTMCell:
    """An nn.LSTMCell holding the weights of the prior's one-layer LSTM."""
    lstm = model.prior.lstm
    cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
    with torch.no_grad():
        cell.weight_ih.copy_(lstm.weight_ih_l0)
        cell.weight_hh.copy_(lstm.weight_hh_l0)
        cell.bias_ih.copy_(lstm.bias_ih_l0)
        cell.bias_hh.copy_(lstm.bias_hh_l0)
    return cell


def _reference_prior_step(model, cell, z_prev, state):
    """One step of the slow reference prior: (loc, scale) of p(z_t | z_<t) and the new state."""
    h, c = cell(z_prev, state)
    loc, raw = model.prior.head(h).chunk(2, dim=-1)
    return loc, F.softplus(raw) + 1e-4, (h, c)


@torch.no_grad()
def _reference_kl_z(model: DSVAE, q_z: Independent, history: torch.Tensor) -> torch.Tensor:
    """Sum over t of KL[q(z_t) || p(z_t | history_<t)], one LSTMCell step at a time; mean over B.

    ``history`` (B, T, Z) is what the prior reads: step t is fed history_{t-1}, with z_0 = 0.
    """
    cell = _reference_cell(model)
    b, t, z_dim = history.shape
    h = history.new_zeros(b, cell.hidden_size)
    state, z_prev, total = (h, h.clone()), history.new_zeros(b, z_dim), history.new_zeros(b)
    mu_q, s_q = q_z.base_dist.loc, q_z.base_dist.scale  # (B, T, Z)
    for step in range(t):
        mu_p, s_p, state = _reference_prior_step(model, cell, z_prev, state)
        total += _gaussian_kl(mu_q[:, step], s_q[:, step], mu_p, s_p)
        z_prev = history[:, step]
    return total.mean()


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("posterior", POSTERIORS)
def test_forward_shapes(tiny_model, tiny_frames, posterior, kind, likelihood) -> None:
    model = tiny_model(posterior, kind, likelihood, f_dim=5, z_dim=3)
    cfg = model.config
    b, t = 3, 4
    x = tiny_frames(cfg, b, t)
    out = model(x, generator=_gen())
    frame = tuple(cfg.frame_shape)

    assert (out.q_f.batch_shape, out.q_f.event_shape) == ((b,), (5,))
    assert (out.p_f.batch_shape, out.p_f.event_shape) == ((b,), (5,))
    assert (out.q_z.batch_shape, out.q_z.event_shape) == ((b, t), (3,))
    assert (out.p_z.batch_shape, out.p_z.event_shape) == ((b, t), (3,))
    assert (out.p_x.batch_shape, out.p_x.event_shape) == ((b, t), frame)
    assert out.f.shape == (b, 5)
    assert out.z.shape == (b, t, 3)
    assert out.reconstruction.shape == x.shape
    assert set(out.terms) == {"recon", "kl_f", "kl_z", "elbo"}
    assert all(v.shape == () and torch.isfinite(v) for v in out.terms.values())
    assert out.terms["kl_f"] > 0 and out.terms["kl_z"] > 0
    # the observation model: probabilities / sigmoid means in (0, 1) and the configured scale
    assert ((out.reconstruction > 0) & (out.reconstruction < 1)).all()
    if likelihood == "bernoulli":
        assert torch.allclose(out.reconstruction, torch.sigmoid(out.p_x.base_dist.logits))
    else:
        expected = 0.2 if likelihood == "gaussian" else 0.3
        assert torch.allclose(out.p_x.base_dist.scale, torch.full_like(x, expected))


def test_forward_shapes_rgb_64(tiny_model, tiny_frames) -> None:
    model = tiny_model("full", "conv", "gaussian-learned", [3, 64, 64], deep=True)
    x = tiny_frames(model.config, 2, 3)
    out = model(x, generator=_gen())
    assert out.reconstruction.shape == x.shape == (2, 3, 3, 64, 64)
    assert out.p_x.event_shape == (3, 64, 64)
    assert model.likelihood.log_scale.shape == (3, 1, 1)  # one scale per channel
    assert out.z.shape == (2, 3, 3) and out.f.shape == (2, 5)


def test_learned_scale_is_per_dimension_for_vectors(tiny_model) -> None:
    model = tiny_model("factorised", "mlp", "gaussian-learned")
    assert model.likelihood.log_scale.shape == (20,)
    assert torch.allclose(model.likelihood.log_scale.exp(), torch.full((20,), 0.3))


# ---------------------------------------------------------------- ELBO terms


@pytest.mark.parametrize("likelihood", LIKELIHOODS)
@pytest.mark.parametrize("posterior", POSTERIORS)
def test_elbo_terms_match_kl_divergence_and_hand_formulas(
    tiny_model, tiny_frames, posterior, likelihood
) -> None:
    model = tiny_model(posterior, "conv", likelihood)
    x = tiny_frames(model.config, 3, 5)
    out = model(x, generator=_gen(1))
    b, f_dim = out.f.shape

    standard = Independent(Normal(torch.zeros(b, f_dim), torch.ones(b, f_dim)), 1)
    kl_f = kl_divergence(out.q_f, standard).mean()
    kl_z = kl_divergence(out.q_z, out.p_z).sum(1).mean()
    recon = out.p_x.log_prob(x).sum(1).mean()
    torch.testing.assert_close(out.terms["kl_f"], kl_f)
    torch.testing.assert_close(out.terms["kl_z"], kl_z)
    torch.testing.assert_close(out.terms["recon"], recon)
    torch.testing.assert_close(out.terms["elbo"], recon - kl_f - kl_z)

    # the same KLs from the closed form, written out
    q_f, q_z, p_z = out.q_f.base_dist, out.q_z.base_dist, out.p_z.base_dist
    hand_kl_f = _gaussian_kl(q_f.loc, q_f.scale, torch.zeros(b, f_dim), torch.ones(b, f_dim))
    hand_kl_z = _gaussian_kl(q_z.loc, q_z.scale, p_z.loc, p_z.scale).sum(1)
    torch.testing.assert_close(out.terms["kl_f"], hand_kl_f.mean())
    torch.testing.assert_close(out.terms["kl_z"], hand_kl_z.mean())

    # log p(x | z, f) by hand
    frame_dims = tuple(range(2, x.ndim))
    if likelihood == "bernoulli":
        logits = out.p_x.base_dist.logits
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    else:
        mean, scale = out.p_x.base_dist.loc, out.p_x.base_dist.scale
        log_px = -0.5 * ((x - mean) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(out.terms["recon"], log_px.sum(frame_dims).sum(1).mean())

    # the loss is the negative ELBO, with beta weights on the KLs
    torch.testing.assert_close(model.loss(out), -out.terms["elbo"])
    torch.testing.assert_close(model.loss(out, 2.0, 0.5), -(recon - 2.0 * kl_f - 0.5 * kl_z))


def test_posterior_samples_follow_the_generator(tiny_model, tiny_frames) -> None:
    model = tiny_model("full")
    x = tiny_frames(model.config)
    a, b = model(x, generator=_gen(3)), model(x, generator=_gen(3))
    c = model(x, generator=_gen(4))
    assert torch.equal(a.z, b.z) and torch.equal(a.f, b.f)
    assert not torch.allclose(a.z, c.z) and not torch.allclose(a.f, c.f)
    # f = mu + sigma * eps with eps the generator's first draws, then z with the next ones
    g = _gen(3)
    eps_f = torch.randn(a.f.shape, generator=g)
    torch.testing.assert_close(a.f, a.q_f.base_dist.loc + a.q_f.base_dist.scale * eps_f)
    eps_z = torch.randn(a.z.shape, generator=g)
    torch.testing.assert_close(a.z, a.q_z.base_dist.loc + a.q_z.base_dist.scale * eps_z)


# ---------------------------------------------------------------- the prior p(z_t | z_<t)


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_kl_z_equals_slow_teacher_forced_reference(tiny_model, tiny_frames, posterior) -> None:
    model = tiny_model(posterior, "mlp", "gaussian")
    _perturb_prior(model)
    x = tiny_frames(model.config, 3, 6)
    out = model(x, generator=_gen(2))
    reference = _reference_kl_z(model, out.q_z, out.z.detach())
    torch.testing.assert_close(out.terms["kl_z"], reference, atol=1e-5, rtol=1e-5)
    # and the prior's parameters themselves, step by step
    cell, state = _reference_cell(model), None
    z_prev = torch.zeros(3, 3)
    with torch.no_grad():
        for step in range(6):
            loc, scale, state = _reference_prior_step(model, cell, z_prev, state)
            torch.testing.assert_close(out.p_z.base_dist.loc[:, step], loc)
            torch.testing.assert_close(out.p_z.base_dist.scale[:, step], scale)
            z_prev = out.z[:, step]


def test_kl_z_of_a_free_running_prior_would_differ(tiny_model, tiny_frames) -> None:
    """An implementation unrolling the prior on its own samples or means fails the test above."""
    model = tiny_model("factorised", "mlp", "gaussian")
    _perturb_prior(model)
    x = tiny_frames(model.config, 3, 6)
    out = model(x, generator=_gen(2))
    kl_z = out.terms["kl_z"]
    with torch.no_grad():
        own_samples = model.prior.sample(3, 6, generator=_gen(5))
        own_means, z_prev, state = [], torch.zeros(3, 3), None
        for _ in range(6):
            dist, state = model.prior.step(z_prev, state)
            z_prev = dist.mean
            own_means.append(z_prev)
        own_means = torch.stack(own_means, dim=1)
        for history in (own_samples, own_means):
            free_running = kl_divergence(out.q_z, model.prior(history)).sum(1).mean()
            # the slow reference agrees with what such an implementation would compute ...
            torch.testing.assert_close(
                _reference_kl_z(model, out.q_z, history), free_running, atol=1e-5, rtol=1e-5
            )
            # ... and that is clearly not the model's kl_z
            assert abs(free_running - kl_z) > 0.05 * kl_z
            assert abs(free_running - kl_z) > 0.1


def test_prior_is_causal_and_reads_the_history(tiny_model) -> None:
    model = tiny_model("factorised")
    _perturb_prior(model)
    t = 5
    z = torch.randn(2, t, 3, generator=_gen(0))
    with torch.no_grad():
        base = model.prior(z).base_dist
        for changed in range(t):
            z2 = z.clone()
            z2[:, changed] += 1.0
            other = model.prior(z2).base_dist
            same = slice(0, changed + 1)  # p(z_s | z_<s) for s <= changed does not see z_changed
            assert torch.equal(other.loc[:, same], base.loc[:, same])
            assert torch.equal(other.scale[:, same], base.scale[:, same])
            if changed + 1 < t:  # the next step does see it
                assert (other.loc[:, changed + 1] - base.loc[:, changed + 1]).abs().max() > 1e-3
    # step 1 is p(z_1 | z_0 = 0): the same for every history
    torch.testing.assert_close(base.loc[0, 0], base.loc[1, 0])


def test_ancestral_sample_equals_slow_reference(tiny_model) -> None:
    model = tiny_model("factorised")
    _perturb_prior(model)
    sample = model.sample_z(2, 4, generator=_gen(7))
    g, cell, state = _gen(7), _reference_cell(model), None
    z_prev, expected = torch.zeros(2, 3), []
    with torch.no_grad():
        for _ in range(4):
            loc, scale, state = _reference_prior_step(model, cell, z_prev, state)
            z_prev = loc + scale * torch.randn(loc.shape, generator=g)
            expected.append(z_prev)
    torch.testing.assert_close(sample, torch.stack(expected, dim=1))
    assert model.sample_f(3, generator=_gen(1)).shape == (3, 5)
    torch.testing.assert_close(
        model.sample_f(3, generator=_gen(1)), torch.randn(3, 5, generator=_gen(1))
    )


def test_diag_gaussian_scale_floor_matches_reference() -> None:
    assert MIN_SCALE == 1e-4  # the reference prior above uses softplus(raw) + 1e-4


# ---------------------------------------------------------------- gradients


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_gradients_reach_every_network(tiny_model, tiny_frames, posterior) -> None:
    model = tiny_model(posterior, "conv", "gaussian-learned")
    x = tiny_frames(model.config, 2, 4)
    model.loss(model(x, generator=_gen())).backward()
    for name in (
        "encoder",
        "static_posterior",
        "dynamics_posterior",
        "prior",
        "decoder",
        "likelihood",
    ):
        params = list(getattr(model, name).named_parameters())
        assert params, name
        for pname, p in params:
            assert p.grad is not None, f"{name}.{pname} has no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}.{pname}"
            if p.ndim >= 2 or name == "likelihood":  # weights (conv biases before BN are ~0)
                assert p.grad.abs().sum() > 0, f"{name}.{pname} has a zero gradient"


# ---------------------------------------------------------------- full q depends on f


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_full_posterior_depends_on_f(tiny_model, tiny_frames, posterior) -> None:
    model = tiny_model(posterior).eval()
    x = tiny_frames(model.config, 2, 4)
    with torch.no_grad():
        features = model.encode_features(x)
        q1 = model.posterior_z(features, torch.randn(2, 5, generator=_gen(0))).base_dist
        q2 = model.posterior_z(features, torch.randn(2, 5, generator=_gen(1))).base_dist
    if posterior == "full":
        assert (q1.loc - q2.loc).abs().max() > 1e-4
        assert (q1.scale - q2.scale).abs().max() > 1e-5
    else:
        assert torch.equal(q1.loc, q2.loc) and torch.equal(q1.scale, q2.scale)


def test_factorised_posterior_reads_one_frame_full_reads_all(tiny_model, tiny_frames) -> None:
    f = torch.randn(2, 5, generator=_gen(0))
    for posterior in POSTERIORS:
        model = tiny_model(posterior).eval()
        x = tiny_frames(model.config, 2, 4)
        x2 = x.clone()
        x2[:, 3] = 1 - x2[:, 3]  # change the last frame only
        with torch.no_grad():
            a = model.posterior_z(model.encode_features(x), f).base_dist.loc
            b = model.posterior_z(model.encode_features(x2), f).base_dist.loc
        changed_early = (a[:, :3] - b[:, :3]).abs().max()
        if posterior == "factorised":
            assert changed_early == 0  # q(z_t | x_t)
        else:
            assert changed_early > 1e-5  # q(z_1:T | f, x_1:T), bi-LSTM
        assert (a[:, 3] - b[:, 3]).abs().max() > 1e-5


# ---------------------------------------------------------------- saving and loading


def _trained_a_little(model: DSVAE, x: torch.Tensor) -> DSVAE:
    """Update BatchNorm statistics and move the weights away from their initial values."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(2):
        opt.zero_grad()
        model.loss(model(x, generator=_gen(step))).backward()
        opt.step()
    return model.eval()


@pytest.mark.parametrize(
    ("posterior", "likelihood"),
    [("factorised", "bernoulli"), ("full", "bernoulli"), ("full", "gaussian-learned")],
)
def test_save_load_round_trip(tmp_path, tiny_model, tiny_frames, posterior, likelihood) -> None:
    model = tiny_model(posterior, "conv", likelihood)
    x = tiny_frames(model.config, 2, 4)
    _trained_a_little(model, x)
    folder = save_model(model, tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((folder / "config.json").read_text())
    assert meta["model"] == to_dict(model.config)

    loaded = load_model(folder)
    assert not loaded.training
    assert loaded.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(ops.reconstruct(loaded, x), ops.reconstruct(model, x))
    with torch.no_grad():
        a = model(x, generator=_gen(0)).terms
        b = loaded(x, generator=_gen(0)).terms
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), (a, b)
    if likelihood == "gaussian-learned":
        assert torch.equal(loaded.likelihood.log_scale, model.likelihood.log_scale)
        assert not torch.allclose(loaded.likelihood.log_scale, torch.tensor(math.log(0.3)))


def test_load_model_from_a_run_folder(tmp_path, tiny_model, tiny_frames) -> None:
    model = tiny_model("full", "mlp", "gaussian").eval()
    save_model(model, tmp_path / "run" / "model")
    loaded = load_model(tmp_path / "run")
    x = tiny_frames(model.config)
    assert torch.equal(ops.reconstruct(loaded, x), ops.reconstruct(model, x))


# ---------------------------------------------------------------- bad model files


@pytest.fixture
def saved(tmp_path, tiny_model) -> Path:
    """A valid saved model folder to break in various ways."""
    return save_model(tiny_model("factorised"), tmp_path / "model")


def test_missing_folder(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_folder_without_config(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="has no config.json"):
        load_model(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(ModelFileError, match="--resume"):
        load_model(tmp_path)


def test_config_not_json(saved) -> None:
    (saved / "config.json").write_text("{ not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(saved)


def test_config_json_of_something_else(saved) -> None:
    (saved / "config.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ModelFileError, match="not a dsvae model config"):
        load_model(saved)


def test_config_with_an_invalid_model_section(saved) -> None:
    meta = json.loads((saved / "config.json").read_text())
    meta["model"]["posterior"] = "partial"
    (saved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match=r"model\.posterior must be one of"):
        load_model(saved)


def test_weights_that_are_a_torch_pickle(saved) -> None:
    torch.save({"w": torch.zeros(3)}, saved / "model.safetensors")
    with pytest.raises(ModelFileError, match="not a valid safetensors file.*never loads pickled"):
        load_model(saved)


def test_weights_that_are_a_malicious_pickle_are_never_unpickled(saved, tmp_path) -> None:
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control))).close()
    assert control.exists()  # the payload is live

    sentinel = tmp_path / "sentinel"
    (saved / "model.safetensors").write_bytes(pickle.dumps({"w": Payload(sentinel)}))
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        load_model(saved)
    assert not sentinel.exists()


def test_weights_of_the_wrong_shape(tmp_path, tiny_model) -> None:
    folder = save_model(tiny_model("factorised", z_dim=4), tmp_path / "z4")
    other = save_model(tiny_model("factorised", z_dim=3), tmp_path / "z3")
    (folder / "config.json").write_bytes((other / "config.json").read_bytes())
    with pytest.raises(ModelFileError, match="does not match config.json"):
        load_model(folder)


def test_missing_weights(saved) -> None:
    (saved / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="has no model.safetensors"):
        load_model(saved)


# ---------------------------------------------------------------- bad configs and frames


def test_model_without_frame_shape_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="frame_shape is not set"):
        DSVAE(ModelConfig(f_dim=4, z_dim=3, hidden_dim=8))


def test_wrong_frames_raise_data_error(tiny_model, tiny_frames) -> None:
    model = tiny_model("factorised")
    x = tiny_frames(model.config, 2, 3)
    with pytest.raises(DataError, match=r"\(B, T, 1, 16, 16\).*got \(2, 3, 1, 32, 32\)"):
        model(torch.zeros(2, 3, 1, 32, 32))
    with pytest.raises(DataError, match="must have shape"):
        model(x[0])  # no batch dimension
    with pytest.raises(DataError, match="must be floats.*torch.uint8"):
        model(x.to(torch.uint8))
    with pytest.raises(DataError, match="must be floats"):
        model(x.long())


def test_paper_sprites_network_is_expressible() -> None:
    """Sec. 4.1 sizes: f=256, z=32, LSTMs of 512, four 5x5 convs of 256 channels down to 8x8."""
    from dsvae.config import load_config

    config = load_config(
        None,
        [
            "model.f_dim=256",
            "model.z_dim=32",
            "model.hidden_dim=512",
            "model.frames.channels=[256,256,256,256]",
            "model.frames.strides=[1,2,2,2]",
            "model.frames.kernel=5",
            "model.frame_shape=[3,64,64]",
            "model.likelihood.kind=gaussian",
        ],
    )
    torch.manual_seed(0)
    model = DSVAE(config.model)
    convs = [m for m in model.encoder.conv if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(256, (5, 5))] * 4
    assert model.prior.lstm.hidden_size == model.static_posterior.lstm.hidden_size == 512
    with torch.no_grad():
        out = model(torch.rand(1, 8, 3, 64, 64))
    assert out.f.shape == (1, 256) and out.z.shape == (1, 8, 32)
    assert out.reconstruction.shape == (1, 8, 3, 64, 64)
    assert model.encoder.fc[0].in_features == 256 * 8 * 8
