"""Tests of dsvae.ops: every operation of Section 2 checked against the model's own pieces."""

from __future__ import annotations

import pytest
import torch

import dsvae.ops as ops
from dsvae.errors import DataError

POSTERIORS = ["factorised", "full"]
B, T = 3, 5


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _differ(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return (a - b).abs().max().item() > tol


@pytest.fixture(autouse=True)
def _no_grad():
    """The ops run without gradients; so do the reference computations (same kernels)."""
    with torch.no_grad():
        yield


@pytest.fixture(params=POSTERIORS)
def model(request, tiny_model):
    """A tiny conv model in eval mode (BatchNorm uses its running statistics)."""
    return tiny_model(request.param, "conv", "bernoulli", seed=1).eval()


@pytest.fixture
def x(model, tiny_frames) -> torch.Tensor:
    return tiny_frames(model.config, B, T, seed=2)


# ---------------------------------------------------------------- encode, decode, reconstruct


def test_encode_uses_posterior_means(model, x) -> None:
    enc = ops.encode(model, x)
    features = model.encode_features(x)
    q_f = model.posterior_f(features)
    q_z = model.posterior_z(features, q_f.mean)  # full q: conditioned on the mean of f
    assert torch.equal(enc.f, q_f.mean) and torch.equal(enc.f, enc.q_f.mean)
    assert torch.equal(enc.z, q_z.mean) and torch.equal(enc.z, enc.q_z.mean)
    assert enc.f.shape == (B, 5) and enc.z.shape == (B, T, 3)


def test_encode_sample_follows_generator(model, x) -> None:
    a = ops.encode(model, x, sample=True, generator=_gen(1))
    b = ops.encode(model, x, sample=True, generator=_gen(1))
    c = ops.encode(model, x, sample=True, generator=_gen(2))
    assert torch.equal(a.f, b.f) and torch.equal(a.z, b.z)
    assert _differ(a.f, c.f) and _differ(a.z, c.z)
    g = _gen(1)
    eps_f = torch.randn(B, 5, generator=g)
    torch.testing.assert_close(a.f, a.q_f.base_dist.loc + a.q_f.base_dist.scale * eps_f)
    eps_z = torch.randn(B, T, 3, generator=g)
    torch.testing.assert_close(a.z, a.q_z.base_dist.loc + a.q_z.base_dist.scale * eps_z)


def test_decode_is_the_likelihood_mean_per_sequence(model) -> None:
    z = torch.randn(B, T, 3, generator=_gen(0))
    f = torch.randn(B, 5, generator=_gen(1))
    out = ops.decode(model, z, f)
    assert out.shape == (B, T, 1, 16, 16)
    logits = model.decoder(torch.cat([z, f[:, None].expand(-1, T, -1)], dim=-1))
    torch.testing.assert_close(out, torch.sigmoid(logits))
    # sequence b depends only on (z_b, f_b); frame t only on (z_t, f)
    f2 = f.clone()
    f2[0] += 1.0
    z2 = z.clone()
    z2[1, 2] += 1.0
    out2 = ops.decode(model, z2, f2)
    assert _differ(out2[0], out[0]) and _differ(out2[1, 2], out[1, 2])
    assert torch.equal(out2[2], out[2]) and torch.equal(out2[1, :2], out[1, :2])


def test_reconstruct_decodes_the_encoding(model, x) -> None:
    enc = ops.encode(model, x)
    assert torch.equal(ops.reconstruct(model, x), ops.decode(model, enc.z, enc.f))
    a = ops.reconstruct(model, x, sample=True, generator=_gen(4))
    enc = ops.encode(model, x, sample=True, generator=_gen(4))
    assert torch.equal(a, ops.decode(model, enc.z, enc.f))
    assert _differ(a, ops.reconstruct(model, x, sample=True, generator=_gen(5)))


# ---------------------------------------------------------------- generation from the prior


def test_generate_draws_f_then_z_from_the_prior(model) -> None:
    out = ops.generate(model, 4, T, generator=_gen(3))
    assert out.shape == (4, T, 1, 16, 16)
    assert torch.equal(out, ops.generate(model, 4, T, generator=_gen(3)))
    assert _differ(out, ops.generate(model, 4, T, generator=_gen(4)))
    g = _gen(3)
    f = model.sample_f(4, g)
    z = model.sample_z(4, T, g)
    assert torch.equal(out, ops.decode(model, z, f))
    with pytest.raises(ValueError, match="at least one"):
        ops.generate(model, 0, T)
    with pytest.raises(ValueError, match="at least one"):
        ops.generate(model, 2, 0)


def test_generate_fixed_f_shares_f_across_k(model) -> None:
    k = 4
    out = ops.generate_fixed_f(model, k, T, generator=_gen(6))
    assert out.shape == (k, T, 1, 16, 16)
    assert torch.equal(out, ops.generate_fixed_f(model, k, T, generator=_gen(6)))
    assert _differ(out, ops.generate_fixed_f(model, k, T, generator=_gen(7)))
    g = _gen(6)
    f = model.sample_f(1, g)[0]
    z = model.sample_z(k, T, g)
    assert torch.equal(out, ops.decode(model, z, f.expand(k, -1)))
    # the K sequences differ (their z differ), the shared f matters
    for i in range(1, k):
        assert _differ(out[0], out[i])
    assert _differ(out, ops.decode(model, z, model.sample_f(k, _gen(0))))


def test_generate_fixed_f_with_a_given_f(model) -> None:
    f = torch.randn(5, generator=_gen(8))
    out = ops.generate_fixed_f(model, 3, T, f=f, generator=_gen(9))
    z = model.sample_z(3, T, _gen(9))  # no f is drawn: z takes the generator's first draws
    assert torch.equal(out, ops.decode(model, z, f.expand(3, -1)))


def test_generate_fixed_z_shares_z_across_k(model) -> None:
    k = 4
    out = ops.generate_fixed_z(model, k, T, generator=_gen(10))
    assert torch.equal(out, ops.generate_fixed_z(model, k, T, generator=_gen(10)))
    assert _differ(out, ops.generate_fixed_z(model, k, T, generator=_gen(11)))
    g = _gen(10)
    z = model.sample_z(1, T, g)[0]
    f = model.sample_f(k, g)
    assert torch.equal(out, ops.decode(model, z.expand(k, -1, -1), f))
    for i in range(1, k):
        assert _differ(out[0], out[i])  # only f differs between the K sequences


def test_generate_fixed_z_with_a_given_z(model) -> None:
    k = 3
    z = torch.randn(T, 3, generator=_gen(12))
    out = ops.generate_fixed_z(model, k, z=z, generator=_gen(13))
    f = model.sample_f(k, _gen(13))
    assert torch.equal(out, ops.decode(model, z.expand(k, -1, -1), f))
    # outputs for different k differ only through f: with one f for all, they are equal
    same_f = ops.decode(model, z.expand(k, -1, -1), f[:1].expand(k, -1))
    assert torch.equal(same_f[1], same_f[0])
    assert _differ(out[1], out[0])
    with pytest.raises(ValueError, match="either z or length"):
        ops.generate_fixed_z(model, k)


# ---------------------------------------------------------------- conditional generation and swap


def test_conditional_generate_keep_f(model, x) -> None:
    out = ops.conditional_generate(model, x, "f", generator=_gen(14))
    assert torch.equal(out, ops.conditional_generate(model, x, "f", generator=_gen(14)))
    assert _differ(out, ops.conditional_generate(model, x, "f", generator=_gen(15)))
    z = model.sample_z(B, T, _gen(14))
    assert torch.equal(out, ops.decode(model, z, ops.encode(model, x).f))


def test_conditional_generate_keep_z(model, x) -> None:
    out = ops.conditional_generate(model, x, "z", generator=_gen(16))
    assert torch.equal(out, ops.conditional_generate(model, x, "z", generator=_gen(16)))
    assert _differ(out, ops.conditional_generate(model, x, "z", generator=_gen(17)))
    f = model.sample_f(B, _gen(16))
    assert torch.equal(out, ops.decode(model, ops.encode(model, x).z, f))


def test_conditional_generate_with_sampled_encoding(model, x) -> None:
    out = ops.conditional_generate(model, x, "f", sample=True, generator=_gen(18))
    g = _gen(18)
    enc = ops.encode(model, x, sample=True, generator=g)  # the encoding draws first
    assert torch.equal(out, ops.decode(model, model.sample_z(B, T, g), enc.f))


def test_conditional_generate_rejects_unknown_keep(model, x) -> None:
    with pytest.raises(ValueError, match="keep must be 'f' or 'z'"):
        ops.conditional_generate(model, x, "x")


def test_swap_with_itself_gives_the_reconstruction_twice(model, x) -> None:
    a, b = ops.swap(model, x, x)
    recon = ops.reconstruct(model, x)
    assert torch.equal(a, recon) and torch.equal(b, recon)


def test_swap_combines_f_of_one_with_z_of_the_other(model, x, tiny_frames) -> None:
    x_b = tiny_frames(model.config, B, T, seed=3)
    ab, ba = ops.swap(model, x, x_b)
    enc_a, enc_b = ops.encode(model, x), ops.encode(model, x_b)
    assert torch.equal(ab, ops.decode(model, enc_b.z, enc_a.f))
    assert torch.equal(ba, ops.decode(model, enc_a.z, enc_b.f))
    assert _differ(ab, ba)
    # for full q, z^b comes from q(z | f^b, x^b) (footnote 1), not from q(z | f^a, x^b)
    z_b_given_f_a = model.posterior_z(model.encode_features(x_b), enc_a.f).mean
    wrong = ops.decode(model, z_b_given_f_a, enc_a.f)
    if model.config.posterior == "full":
        assert _differ(ab, wrong, 1e-6)
    else:
        assert torch.equal(ab, wrong)


def test_swap_rejects_batches_of_different_shapes(model, x) -> None:
    with pytest.raises(DataError, match="same shape"):
        ops.swap(model, x, x[:, :3])


# ---------------------------------------------------------------- imputation and prediction


def test_observed_mask() -> None:
    mask = ops.observed_mask(2, 4, 3)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True, True, True, False]] * 2
    assert ops.observed_mask(1, 4, 4).all()
    for bad in (0, 5, -1):
        with pytest.raises(DataError, match=r"must be in 1\.\.4"):
            ops.observed_mask(2, 4, bad)


def test_impute_with_everything_observed_is_reconstruct(model, x) -> None:
    recon = ops.reconstruct(model, x)
    torch.testing.assert_close(ops.impute(model, x, torch.ones(B, T, dtype=torch.bool)), recon)
    torch.testing.assert_close(ops.impute(model, x, observed=T), recon)


def test_prediction_ignores_the_missing_frames(model, x, tiny_frames) -> None:
    observed = 2
    out = ops.impute(model, x, observed=observed)
    noisy = x.clone()
    noisy[:, observed:] = tiny_frames(model.config, B, T, seed=9)[:, observed:]
    assert _differ(noisy, x)
    torch.testing.assert_close(ops.impute(model, noisy, observed=observed), out, rtol=0, atol=1e-6)
    # but it does read the observed ones
    changed = x.clone()
    changed[:, 0] = 1 - changed[:, 0]
    assert _differ(ops.impute(model, changed, observed=observed), out)


def test_prediction_of_observed_steps_is_the_reconstruction_of_the_prefix(model, x) -> None:
    """f and (full q) z read only the observed frames: as if the sequence were cut there."""
    observed = 3
    out = ops.impute(model, x, observed=observed)
    torch.testing.assert_close(out[:, :observed], ops.reconstruct(model, x[:, :observed]))


def test_prediction_fills_missing_steps_with_the_prior_mean(model, x) -> None:
    observed = 2
    mask = ops.observed_mask(B, T, observed)
    features = model.encode_features(x)
    f = model.posterior_f(features, mask).mean
    z = model.posterior_z(features, f, mask).mean.clone()
    for step in range(observed, T):  # teacher-forced prior on the filled-in history
        z[:, step] = model.prior(z).mean[:, step]
    expected = ops.decode(model, z, f)
    torch.testing.assert_close(ops.impute(model, x, observed=observed), expected)


def test_impute_with_gaps_in_the_middle(model, x, tiny_frames) -> None:
    mask = torch.tensor(
        [
            [True, False, True, False, True],
            [False, True, True, False, False],
            [True, True, False, False, True],
        ]
    )
    out = ops.impute(model, x, mask)
    noisy = torch.where(mask[:, :, None, None, None], x, tiny_frames(model.config, B, T, seed=11))
    assert _differ(noisy, x)
    torch.testing.assert_close(ops.impute(model, noisy, mask), out, rtol=0, atol=1e-6)
    # each row's observed frames are modelled as if the missing ones were cut out
    for row in range(B):
        steps = mask[row].nonzero()[:, 0]
        recon = ops.reconstruct(model, x[row : row + 1, steps])
        torch.testing.assert_close(out[row : row + 1, steps], recon)
    # the mask may be given as 0/1 numbers too
    torch.testing.assert_close(ops.impute(model, x, mask.int()), out)


def test_impute_sampling_follows_the_generator(model, x) -> None:
    a = ops.impute(model, x, observed=2, sample=True, generator=_gen(20))
    b = ops.impute(model, x, observed=2, sample=True, generator=_gen(20))
    c = ops.impute(model, x, observed=2, sample=True, generator=_gen(21))
    assert torch.equal(a, b)
    assert _differ(a, c)
    assert _differ(a, ops.impute(model, x, observed=2))


def test_impute_rejects_bad_masks(model, x) -> None:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(DataError, match="hides every frame"):
        ops.impute(model, x, mask)
    with pytest.raises(DataError, match="mask must have shape"):
        ops.impute(model, x, torch.ones(B, T + 1, dtype=torch.bool))
    for observed in (0, T + 1):
        with pytest.raises(DataError, match="number of observed frames"):
            ops.impute(model, x, observed=observed)
    with pytest.raises(ValueError, match="exactly one of mask= or observed="):
        ops.impute(model, x)
    with pytest.raises(ValueError, match="exactly one of mask= or observed="):
        ops.impute(model, x, torch.ones(B, T, dtype=torch.bool), observed=2)


def test_ops_work_on_vector_frames(tiny_model, tiny_frames) -> None:
    model = tiny_model("full", "mlp", "gaussian", seed=3).eval()
    x = tiny_frames(model.config, 2, 4)
    enc = ops.encode(model, x)
    mean = model.decode(enc.z, enc.f).base_dist.loc
    assert torch.equal(ops.reconstruct(model, x), mean)
    assert ops.generate(model, 2, 4, generator=_gen()).shape == (2, 4, 20)
    torch.testing.assert_close(ops.impute(model, x, observed=4), ops.reconstruct(model, x))
