"""Augmentations for contrastive training, the InfoNCE loss, train.contrast_weight and
train.static_contrast_weight."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dsvae.augment import (
    ChannelPermutation,
    ColourDistortion,
    FrameShuffle,
    PitchShift,
    build_augmentation,
    build_static_augmentation,
)
from dsvae.config import TrainConfig, load_config
from dsvae.data import write_dataset
from dsvae.errors import ConfigError
from dsvae.model.information import info_nce

D, BIN_HZ = 200, 20.0


def _stats(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(D, generator=g) - 3.0, torch.rand(D, generator=g) + 0.5


def _voiced(f0: float, frames: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Log spectra: a smooth envelope (two formant bumps) plus a harmonic comb at f0."""
    hz = torch.arange(D) * BIN_HZ
    envelope = 1.5 * torch.exp(-(((hz - 700) / 300) ** 2)) + torch.exp(-(((hz - 2200) / 400) ** 2))
    comb = torch.cos(2 * math.pi * hz / f0)
    return (envelope + comb).expand(frames, D), envelope


def _comb_period_hz(fine: torch.Tensor) -> float:
    """The strongest period of the fine structure along frequency, in Hz (pitch)."""
    spectrum = torch.fft.rfft(fine - fine.mean(), n=8 * D).abs()
    k = int(spectrum[4:].argmax()) + 4  # skip what is left of the envelope
    return 8 * D * BIN_HZ / k


@pytest.mark.parametrize("factor", [0.6, 1.5, 1.8])
def test_pitch_shift_moves_the_harmonics_and_keeps_the_envelope(factor):
    mean, std = _stats()
    shift = PitchShift(mean, std, BIN_HZ, max_factor=2.0)
    log_spec, envelope = _voiced(120.0)
    x = ((log_spec - mean) / std).unsqueeze(0)  # (1, T, D), normalised like a data set
    y = shift(x, factor=torch.tensor([factor]))
    out = y[0] * std + mean
    assert out.shape == log_spec.shape and torch.isfinite(out).all()
    fine = out[0] - shift.envelope(out[:1])[0]
    assert _comb_period_hz(fine) == pytest.approx(120.0 * factor, rel=0.05)
    # the formants stay: the smoothed spectrum hardly moves, away from the top edge
    before, after = shift.envelope(log_spec[:1])[0], shift.envelope(out[:1])[0]
    assert (after - before)[10:150].abs().max() < 0.15
    assert (after - envelope)[10:150].abs().max() < 0.3


def test_pitch_shift_identity_draws_and_one_factor_per_sequence():
    mean, std = _stats(1)
    shift = PitchShift(mean, std, BIN_HZ, max_factor=1.8)
    frame = (_voiced(150.0, frames=1)[0] - mean) / std
    x = frame.expand(4, 5, D).clone()
    torch.testing.assert_close(shift(x, factor=torch.ones(4)), x, atol=1e-5, rtol=0)
    y1 = shift(x, torch.Generator().manual_seed(3))
    y2 = shift(x, torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)  # the generator decides
    assert torch.allclose(y1, y1[:, :1].expand_as(y1))  # every frame of a sequence alike
    assert not torch.allclose(y1[0], y1[1])  # sequences drawn apart
    periods = [
        _comb_period_hz(s[0] * std + mean - shift.envelope(s[:1] * std + mean)[0]) for s in y1
    ]
    assert all(150 / 1.8 * 0.95 <= p <= 150 * 1.8 * 1.05 for p in periods), periods


def test_channel_permutation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 4, 3, 5, 5, generator=g)
    y = ChannelPermutation()(x, torch.Generator().manual_seed(1))
    assert torch.equal(y, ChannelPermutation()(x, torch.Generator().manual_seed(1)))
    for b in range(6):
        perm = [next(c for c in range(3) if torch.equal(y[b, 0, k], x[b, 0, c])) for k in range(3)]
        assert sorted(perm) == [0, 1, 2]
        assert torch.equal(y[b], x[b][:, perm])  # the same permutation at every step
    with pytest.raises(ConfigError, match="needs \\(B, T, C, H, W\\) video"):
        ChannelPermutation()(torch.zeros(2, 3, 10))


def test_frame_shuffle_permutes_time_and_mirrors():
    x = torch.arange(5 * 6 * 2 * 3 * 4, dtype=torch.float32).view(5, 6, 2, 3, 4)
    y = FrameShuffle()(x, torch.Generator().manual_seed(0))
    assert torch.equal(y, FrameShuffle()(x, torch.Generator().manual_seed(0)))
    orders = []
    for b in range(5):
        order = [next(s for s in range(6) if torch.equal(y[b, t], x[b, s])) for t in range(6)]
        assert sorted(order) == list(range(6))  # every frame once, nothing else changed
        orders.append(order)
    assert len({tuple(o) for o in orders}) > 1  # one order per sequence
    mirrored = FrameShuffle(mirror=True)(x, torch.Generator().manual_seed(0))
    assert torch.equal(mirrored, y.flip(-1))  # the same orders, each frame left-right flipped
    spectra = torch.rand(3, 4, 7)
    assert torch.equal(FrameShuffle()(spectra).sort(1).values, spectra.sort(1).values)
    with pytest.raises(ConfigError, match="mirroring needs"):
        FrameShuffle(mirror=True)(spectra)
    assert build_static_augmentation("mirror-shuffle", (3, 8, 8)).mirror
    assert not build_static_augmentation("shuffle", (20,)).mirror
    with pytest.raises(ConfigError, match="mirror-shuffle needs image frames"):
        build_static_augmentation("mirror-shuffle", (20,))
    with pytest.raises(ConfigError, match="static_contrast_augment must be one of"):
        TrainConfig(static_contrast_augment="reverse")


def test_build_augmentation_picks_by_data():
    mean, std = _stats()
    speech_meta = {
        "spectrogram": {
            "mean": mean.tolist(),
            "std": std.tolist(),
            "sample_rate": 8000,
            "n_fft": 400,
        }
    }
    pitch = build_augmentation("auto", (D,), speech_meta, pitch_max_factor=1.3)
    assert isinstance(pitch, PitchShift) and pitch.log_max == pytest.approx(math.log(1.3))
    assert isinstance(build_augmentation("auto", (3, 8, 8), {}), ChannelPermutation)
    with pytest.raises(ConfigError, match="knows speech spectra"):
        build_augmentation("auto", (1, 16, 16), {})
    with pytest.raises(ConfigError, match="needs RGB frames"):
        build_augmentation("channels", (D,), speech_meta)
    with pytest.raises(ConfigError, match="built by `dsvae data speech`"):
        build_augmentation("pitch", (20,), {})
    with pytest.raises(ConfigError, match="contrast_augment must be one of"):
        TrainConfig(contrast_augment="blur")
    with pytest.raises(ConfigError, match="pitch_max_factor must be >= 1"):
        TrainConfig(pitch_max_factor=0.5)


def test_info_nce_known_answers():
    eye = torch.eye(8)
    assert info_nce(eye, eye, temperature=0.01).item() < 1e-6  # every row finds its partner
    same = torch.ones(8, 4)
    assert info_nce(same, same).item() == pytest.approx(math.log(8), abs=1e-6)  # no information
    assert info_nce(eye, eye.roll(1, 0), temperature=0.01).item() > 50  # partners swapped
    with pytest.raises(ValueError, match="two \\(B, D\\) tensors"):
        info_nce(torch.zeros(4, 3), torch.zeros(4, 2))


@pytest.fixture(scope="module")
def rgb_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(40, 4, 16, 16, 3), dtype=np.uint8)
    meta = {"name": "rgb", "source": "random", "seed": 0, "licence": "none"}
    return write_dataset(tmp_path_factory.mktemp("rgb") / "d", frames, {}, meta)


def test_contrast_weight_trains_with_the_channel_permutation(rgb_dir, tmp_path):
    from dsvae.train import train
    from tiny import TINY_TRAIN, tiny_config

    extra = ["train.max_epochs=1", "train.contrast_weight=2.0", "train.val_fraction=0.2"]
    train(tiny_config(*TINY_TRAIN, *extra, width=8), rgb_dir, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = [r for r in rows if r["train/loss"]]
    for r in steps:
        expected = -float(r["train/elbo"]) + 2.0 * float(r["train/contrast"])
        assert float(r["train/loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-3)
        assert 0.0 <= float(r["train/contrast"]) <= math.log(16) + 1e-4
    assert [r["val/contrast"] != "" for r in rows if r["val/elbo"]] == [True]


def test_static_contrast_weight_trains_with_the_frame_shuffle(rgb_dir, tmp_path):
    from dsvae.train import train
    from tiny import TINY_TRAIN, tiny_config

    extra = ["train.static_contrast_weight=3.0", "train.static_contrast_augment=mirror-shuffle"]
    config = tiny_config(
        *TINY_TRAIN, "train.max_epochs=1", *extra, "train.val_fraction=0.2", width=8
    )
    train(config, rgb_dir, tmp_path / "run")
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    steps = [r for r in rows if r["train/loss"]]
    assert steps
    for r in steps:
        expected = -float(r["train/elbo"]) + 3.0 * float(r["train/static_contrast"])
        assert float(r["train/loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-3)
        assert 0.0 < float(r["train/static_contrast"]) < 2 * math.log(16)  # chance: log 16
    assert [r["val/static_contrast"] != "" for r in rows if r["val/elbo"]] == [True]


def test_contrast_weight_refuses_what_it_cannot_augment(tmp_path):
    from dsvae.data import make_bouncing_ball_dataset
    from dsvae.train import train
    from dsvae.train.module import DSVAEModule
    from tiny import TINY_TRAIN, tiny_config

    ball = make_bouncing_ball_dataset(tmp_path / "ball", n=20, length=4, size=16, seed=0)
    config = tiny_config(*TINY_TRAIN, "train.max_steps=1", "train.contrast_weight=1", width=8)
    with pytest.raises(ConfigError, match="knows speech spectra .* and RGB video"):
        train(config, ball, tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    baseline = load_config(
        None, ["model.dynamics=lstm-f", "model.frame_shape=[1,16,16]", "train.contrast_weight=1"]
    )
    with pytest.raises(ConfigError, match="needs the stochastic dynamics"):
        DSVAEModule(baseline)
    spectra = write_dataset(
        tmp_path / "spectra",
        np.zeros((10, 4, 6), np.float32),
        {},
        {"name": "s", "source": "zeros", "seed": 0, "licence": "none"},
    )
    mirrored = tiny_config(
        *TINY_TRAIN, "train.max_steps=1", "train.static_contrast_weight=1",
        "train.static_contrast_augment=mirror-shuffle", "model.frames.kind=mlp", width=8,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="mirror-shuffle needs image frames"):
        train(mirrored, spectra, tmp_path / "run2")
    assert not (tmp_path / "run2").exists()


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.skipif(
    not (SHARED / "fsdd" / "recordings").is_dir() or not (SHARED / "allison" / "digits").is_dir(),
    reason="FSDD and Allison are not in ../shared/data",
)
@pytest.mark.parametrize(
    "clip", ["fsdd/recordings/3_george_0.wav", "allison/digits/7.wav"], ids=["male", "female"]
)
def test_pitch_shift_moves_the_pitch_of_real_speech(clip):
    """Shifted spectra of a real recording, heard through Griffin-Lim, change f0 by the factor."""
    pytest.importorskip(
        "librosa", reason="speech needs the audio extra: pip install 'dsvae[audio]'"
    )
    from dsvae.audio import SpectrogramConfig, griffin_lim, log_spectrogram, median_f0, read_audio

    cfg = SpectrogramConfig.for_rate(8000)
    audio, rate = read_audio(SHARED / clip, 8000)
    log_spec = log_spectrogram(audio, cfg)
    mean, std = log_spec.mean(0), log_spec.std(0) + 0.1  # any per-bin normalisation will do
    shift = PitchShift(mean, std, cfg.sample_rate / cfg.n_fft, max_factor=2.0)
    x = torch.from_numpy((log_spec - mean) / std).unsqueeze(0)
    base = median_f0(griffin_lim(log_spec, cfg, n_iter=60), rate)
    for factor in (0.7, 1.5):
        shifted = shift(x, factor=torch.tensor([factor]))[0].numpy() * std + mean
        ratio = median_f0(griffin_lim(shifted, cfg, n_iter=60), rate) / base
        assert ratio == pytest.approx(factor, rel=0.1), (clip, factor, ratio)


def test_colour_distortion_changes_brightness_per_sequence_and_keeps_the_motion():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 4, 3, 5, 5, generator=g)
    y = ColourDistortion(0.5)(x, torch.Generator().manual_seed(1))
    assert torch.equal(y, ColourDistortion(0.5)(x, torch.Generator().manual_seed(1)))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    permuted = ChannelPermutation()(x, torch.Generator().manual_seed(1))
    for b in range(6):
        for c in range(3):
            # one affine map per sequence and channel, the same at every frame
            src, dst = permuted[b, :, c].flatten(), y[b, :, c].flatten()
            inside = (dst > 0) & (dst < 1)
            slope, intercept = np.polyfit(src[inside].numpy(), dst[inside].numpy(), 1)
            assert 0.5 - 1e-4 <= slope <= 1.5 + 1e-4 and -0.25 - 1e-4 <= intercept <= 0.25 + 1e-4
            assert torch.allclose(src[inside] * slope + intercept, dst[inside], atol=1e-4)
    # the brightness of the sequences changes, which a permutation alone never does
    assert not torch.allclose(y.mean(dim=(1, 2, 3, 4)), x.mean(dim=(1, 2, 3, 4)), atol=1e-3)
    assert torch.allclose(permuted.mean(dim=(1, 2, 3, 4)), x.mean(dim=(1, 2, 3, 4)), atol=1e-6)
    assert isinstance(build_augmentation("colour", (3, 8, 8), {}), ColourDistortion)
    with pytest.raises(ConfigError, match="contrast_augment=colour needs RGB frames"):
        build_augmentation("colour", (1, 8, 8), {})
