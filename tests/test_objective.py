"""The training objective: KL weights and warm-up, the extra terms, and their checks."""

from __future__ import annotations

import pytest
import torch

from dsvae import ops
from dsvae.augment import ChannelPermutation, FrameShuffle
from dsvae.config import ExperimentConfig, TrainConfig, load_config
from dsvae.errors import ArgumentError, ConfigError, DsvaeError
from dsvae.model import build_model
from dsvae.model.information import info_nce, mi_penalty, posterior_match
from dsvae.model.objective import Objective, extra_term_names, kl_warmup
from dsvae.train.run import resolve_frame_shape
from tiny import TINY_MODEL


def _config(*extra: str) -> ExperimentConfig:
    return load_config(None, [*TINY_MODEL, "model.frame_shape=[3,16,16]", *extra])


def test_kl_warmup_is_linear_from_the_first_step():
    assert kl_warmup(0, 0) == 1.0 and kl_warmup(7, 0) == 1.0
    assert [kl_warmup(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_extra_term_names_follow_the_weights():
    assert extra_term_names(TrainConfig()) == ()
    cfg = TrainConfig(mi_weight=1, static_contrast_weight=2)
    assert extra_term_names(cfg) == ("mi", "static_contrast")
    cfg = TrainConfig(contrast_weight=1, static_contrast_weight=2, mi_weight=3)
    assert extra_term_names(cfg) == ("mi", "contrast", "static_contrast")


def test_build_checks_the_model_and_the_data():
    with pytest.raises(ConfigError, match="needs the stochastic dynamics"):
        Objective.build(_config("model.dynamics=lstm-c", "train.contrast_weight=1"))
    mirror = _config(
        "train.static_contrast_weight=1", "train.static_contrast_augment=mirror-shuffle"
    )
    with pytest.raises(ConfigError, match="mirror-shuffle needs image frames"):
        Objective.build(mirror, frame_shape=(20,), meta={})
    assert Objective.build(mirror).static_augment.mirror  # no data: checked on the frames later
    contrast = _config("train.contrast_weight=1")
    waiting = Objective.build(contrast)
    assert waiting.needs_data and waiting.augment is None
    ready = Objective.build(contrast, frame_shape=(3, 16, 16), meta={})
    assert not ready.needs_data and isinstance(ready.augment, ChannelPermutation)
    assert not Objective.build(_config()).needs_data


def test_the_loss_is_the_weighted_elbo_plus_the_weighted_terms():
    config = _config(
        "train.beta_f=2",
        "train.beta_z=0.5",
        "train.kl_warmup_steps=4",
        "train.mi_weight=0.7",
        "train.contrast_weight=1.5",
        "train.static_contrast_weight=3",
    )
    objective = Objective.build(config, frame_shape=(3, 16, 16), meta={})
    torch.manual_seed(0)
    model = build_model(config.model)
    x = torch.rand(6, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = model(x, generator=torch.Generator().manual_seed(2))
    loss, extra = objective(model, x, out, step=1, generator=torch.Generator().manual_seed(3))
    assert list(extra) == ["mi", "contrast", "static_contrast"]

    g = torch.Generator().manual_seed(3)  # the augmentations draw in the order of the terms
    features = model.encode_features(ChannelPermutation()(x, g))
    mu_aug = model.posterior_z(features, model.posterior_f(features).mean).mean
    contrast = info_nce(out.q_z.mean.flatten(1), mu_aug.flatten(1), 0.5)
    q_f_aug = model.posterior_f(model.encode_features(FrameShuffle()(x, g)))
    static = info_nce(out.q_f.mean, q_f_aug.mean, 0.5)
    penalty, mi = mi_penalty(out.q_f, out.f, out.q_z, out.z)
    torch.testing.assert_close(extra["mi"], mi)
    torch.testing.assert_close(extra["contrast"], contrast)
    torch.testing.assert_close(extra["static_contrast"], static)

    t, w = out.terms, 0.5  # the warm-up weight at step 1 of 4
    elbo = -(t["recon"] - w * 2 * t["kl_f"] - w * 0.5 * t["kl_z"])
    expected = elbo + 0.7 * penalty + 1.5 * contrast + 3 * static
    torch.testing.assert_close(loss, expected)
    plain = Objective.build(_config())
    torch.testing.assert_close(plain(model, x, out)[0], -t["elbo"])  # Eq. 2


def test_posterior_match_is_the_symmetric_kl():
    from torch.distributions import Independent, Normal, kl_divergence

    g = torch.Generator().manual_seed(0)
    loc_a, loc_b = torch.randn(5, 4, 3, generator=g), torch.randn(5, 4, 3, generator=g)
    scale_a = torch.rand(5, 4, 3, generator=g) + 0.1
    scale_b = torch.rand(5, 4, 3, generator=g) + 0.1
    q_a = Independent(Normal(loc_a, scale_a), 2)
    q_b = Independent(Normal(loc_b, scale_b), 2)
    expected = (kl_divergence(q_a, q_b) + kl_divergence(q_b, q_a)).mean()
    torch.testing.assert_close(posterior_match(q_a, q_b), expected)
    assert posterior_match(q_a, q_a).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="two posteriors of one shape"):
        posterior_match(q_a, Independent(Normal(loc_a[:, :2], scale_a[:, :2]), 2))


def test_contrast_loss_match_compares_the_posteriors():
    config = _config(
        "train.contrast_weight=1.5",
        "train.static_contrast_weight=3",
        "train.static_contrast_augment=mirror-shuffle",
        "train.contrast_loss=match",
    )
    objective = Objective.build(config, frame_shape=(3, 16, 16), meta={})
    torch.manual_seed(0)
    model = build_model(config.model)
    x = torch.rand(6, 4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    out = model(x, generator=torch.Generator().manual_seed(2))
    loss, extra = objective(model, x, out, generator=torch.Generator().manual_seed(3))

    g = torch.Generator().manual_seed(3)
    features = model.encode_features(ChannelPermutation()(x, g))
    q_z_aug = model.posterior_z(features, model.posterior_f(features).mean)
    q_f_aug = model.posterior_f(model.encode_features(FrameShuffle(mirror=True)(x, g)))
    contrast, static = posterior_match(out.q_z, q_z_aug), posterior_match(out.q_f, q_f_aug)
    torch.testing.assert_close(extra["contrast"], contrast)
    torch.testing.assert_close(extra["static_contrast"], static)
    assert contrast.item() > 0 and static.item() > 0
    torch.testing.assert_close(loss, -out.terms["elbo"] + 1.5 * contrast + 3 * static)
    with pytest.raises(ConfigError, match="train.contrast_loss must be one of"):
        TrainConfig(contrast_loss="cosine")


def test_resolve_frame_shape_returns_a_new_config():
    config = load_config(None, TINY_MODEL)
    resolved = resolve_frame_shape(config, (1, 16, 16))
    assert resolved.model.frame_shape == [1, 16, 16] and config.model.frame_shape is None
    assert resolved.train is config.train
    with pytest.raises(ConfigError, match="frame_shape is \\[1, 16, 16\\]"):
        resolve_frame_shape(resolved, (3, 16, 16))


@pytest.mark.parametrize("dynamics", ["lstm-f", "lstm-c"])
def test_the_baselines_share_the_interface_ops_uses(dynamics):
    torch.manual_seed(0)
    config = load_config(
        None, [*TINY_MODEL, "model.frame_shape=[1,16,16]", f"model.dynamics={dynamics}"]
    )
    model = build_model(config.model).eval()
    x = torch.rand(2, 5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    enc = ops.encode(model, x)
    assert enc.z.shape == (2, 3) and enc.f.shape == (2, 4)  # one global z per sequence
    ab, _ = ops.swap(model, x, x.flip(0))
    assert ab.shape == x.shape
    torch.testing.assert_close(ab, ops.decode(model, enc.z.flip(0), enc.f, 5))
    torch.testing.assert_close(ops.reconstruct(model, x), ops.decode(model, enc.z, enc.f, 5))
    with pytest.raises(ArgumentError, match="pass the length"):
        ops.decode(model, enc.z, enc.f)


def test_ops_raise_the_projects_errors(tiny_model, tiny_frames):
    model = tiny_model().eval()
    x = tiny_frames(model.config, 2, 4)
    for call in (
        lambda: ops.generate(model, 0, 4),
        lambda: ops.generate_fixed_z(model, 2),
        lambda: ops.conditional_generate(model, x, "x"),
        lambda: ops.impute(model, x),
    ):
        with pytest.raises(ArgumentError) as info:
            call()
        assert isinstance(info.value, DsvaeError) and isinstance(info.value, ValueError)
