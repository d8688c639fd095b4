"""Augmentations that change what a sequence's static factor should hold and keep its dynamics.

Contrastive training of the dynamics posterior (C-DSVAE, Bai et al. 2021) asks E_q[z_1:T]
of a sequence and of its augmented copy to match each other better than any other
sequence in the batch (:func:`dsvae.model.information.info_nce`). The augmentation
changes what f should carry and leaves what z_1:T should carry, so z_1:T is pushed to
ignore it and f has to explain it:

* :class:`PitchShift`, for speech spectra: moves the harmonics (the voice's pitch) by
  one random factor per sequence and keeps the spectral envelope (what is said).
* :class:`ChannelPermutation`, for RGB video: permutes the colour channels, one random
  permutation per sequence (the colours of a character, not its motion).
* :class:`ColourDistortion`, for RGB video: the channel permutation, then a random gain
  and offset per channel, so that brightness and contrast change too (a permutation
  keeps each pixel's brightness, and colours such as skin tones differ mostly in it).

The static posterior gets the mirror image of that idea: E_q[f] of a sequence and of a copy
that keeps the content and loses the dynamics should match (``train.static_contrast_weight``):

* :class:`FrameShuffle`: permutes the frames in time, one random order per sequence
  (C-DSVAE's content augmentation), and optionally mirrors every image frame left to
  right, which turns a character facing left into one facing right.

All take (B, T, ...) model-space batches and a ``torch.Generator`` for their randomness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from dsvae.choices import ContrastAugment, StaticAugment, check_choice, names
from dsvae.errors import ConfigError


class Augmentation(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """An augmented copy of ``x`` (B, T, ...), one draw per sequence."""


class PitchShift:
    """Scales the harmonic structure of normalised log spectra by f ~ logU[1/m, m].

    Each frame's log spectrum (the normalisation undone with the data set's per-bin
    ``mean`` and ``std``) is split into an envelope, a moving average over
    ``smooth_hz`` of frequency, and the fine structure around it (the harmonics). The
    fine structure is stretched along the frequency axis by the sequence's factor
    (bin k takes the value at k / factor, linearly interpolated) and added back to the
    envelope, so the formants stay where they are and the pitch moves by the factor.
    Bins that a lowered pitch leaves with no source keep the envelope alone.
    """

    def __init__(
        self,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
        bin_hz: float,
        max_factor: float = 1.8,
        smooth_hz: float = 400.0,
    ) -> None:
        if max_factor < 1.0:
            raise ConfigError(f"the largest pitch factor must be >= 1, got {max_factor}")
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.std = torch.as_tensor(std, dtype=torch.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ConfigError("PitchShift needs a per-bin mean and std of the same length")
        self.log_max = math.log(max_factor)
        half = max(1, round(smooth_hz / bin_hz / 2))
        window = torch.hann_window(2 * half + 3, periodic=False)[1:-1]
        self.kernel = (window / window.sum()).view(1, 1, -1)

    def envelope(self, log_spec: torch.Tensor) -> torch.Tensor:
        """The moving average of (N, D) log spectra over frequency (edges reflected)."""
        half = self.kernel.shape[-1] // 2
        padded = F.pad(log_spec.unsqueeze(1), (half, half), mode="reflect")
        return F.conv1d(padded, self.kernel.to(log_spec)).squeeze(1)

    def __call__(
        self,
        x: torch.Tensor,
        generator: torch.Generator | None = None,
        factor: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Shift (B, T, D) normalised spectra; ``factor`` (B,) fixes the factors instead of drawing."""
        b, t, d = x.shape
        if d != self.mean.shape[0]:
            raise ConfigError(
                f"PitchShift was set up for {self.mean.shape[0]} bins, the frames have {d}"
            )
        if factor is None:
            device = x.device if generator is None else generator.device
            u = torch.rand(b, generator=generator, device=device)
            factor = torch.exp((2 * u - 1) * self.log_max).to(x.device)
        mean, std = self.mean.to(x), self.std.to(x)
        log_spec = (x * std + mean).reshape(b * t, d)
        env = self.envelope(log_spec)
        fine = (log_spec - env).reshape(b, t, d)
        # bin k of the shifted frame reads the fine structure at k / factor
        source = torch.arange(d, device=x.device, dtype=x.dtype) / factor.to(x).view(b, 1)
        inside = (source <= d - 1).unsqueeze(1)  # a lowered pitch leaves the top bins without
        source = source.clamp(max=d - 1)
        lo = source.floor().long().clamp(max=d - 2)
        w = (source - lo).unsqueeze(1)  # (B, 1, D)
        lo = lo.unsqueeze(1).expand(b, t, d)
        shifted = torch.lerp(fine.gather(2, lo), fine.gather(2, lo + 1), w) * inside
        out = env.reshape(b, t, d) + shifted
        return (out - mean) / std


class ChannelPermutation:
    """Permutes the colour channels of (B, T, C, H, W) video, one permutation per sequence."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim != 5:
            raise ConfigError(
                f"channel permutation needs (B, T, C, H, W) video, got {tuple(x.shape)}"
            )
        b, c = x.shape[0], x.shape[2]
        device = x.device if generator is None else generator.device
        perms = torch.stack(
            [torch.randperm(c, generator=generator, device=device) for _ in range(b)]
        )
        index = perms.to(x.device).view(b, 1, c, 1, 1).expand(-1, x.shape[1], -1, *x.shape[3:])
        return x.gather(2, index)


class ColourDistortion:
    """A :class:`ChannelPermutation`, then ``x * gain + offset`` clipped to [0, 1], with
    one gain in [1 - ``strength``, 1 + ``strength``] and one offset in
    [-``strength`` / 2, ``strength`` / 2] per channel and sequence (the same for all frames)."""

    def __init__(self, strength: float = 0.5) -> None:
        self.strength = strength
        self.permute = ChannelPermutation()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = self.permute(x, generator)
        b, c = x.shape[0], x.shape[2]
        device = x.device if generator is None else generator.device
        u = torch.rand(2, b, 1, c, 1, 1, generator=generator, device=device).to(x.device)
        gain = 1 + self.strength * (2 * u[0] - 1)
        offset = self.strength * (u[1] - 0.5)
        return (out * gain + offset).clamp(0.0, 1.0)


class FrameShuffle:
    """Permutes the T frames of each sequence (one random order per sequence); ``mirror``
    also flips every (C, H, W) frame along its width."""

    def __init__(self, mirror: bool = False) -> None:
        self.mirror = mirror

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.mirror and x.ndim != 5:
            raise ConfigError(
                f"mirroring needs (B, T, C, H, W) video, got {tuple(x.shape)}; "
                "use train.static_contrast_augment=shuffle"
            )
        b, t = x.shape[:2]
        device = x.device if generator is None else generator.device
        order = torch.argsort(torch.rand(b, t, generator=generator, device=device), dim=1)
        index = order.to(x.device).view(b, t, *([1] * (x.ndim - 2))).expand_as(x)
        out = x.gather(1, index)
        return out.flip(-1) if self.mirror else out


def build_static_augmentation(name: str, frame_shape: Sequence[int]) -> Augmentation:
    """The augmentation ``name`` (a :data:`~dsvae.choices.StaticAugment`) for frames."""
    check_choice("train.static_contrast_augment", name, names(StaticAugment))
    mirror = name == "mirror-shuffle"
    if mirror and len(frame_shape) != 3:
        raise ConfigError(
            f"mirror-shuffle needs image frames (C, H, W), got frame shape {tuple(frame_shape)}; "
            "use train.static_contrast_augment=shuffle"
        )
    return FrameShuffle(mirror=mirror)


def build_augmentation(
    name: str, frame_shape: Sequence[int], meta: dict[str, Any], pitch_max_factor: float = 1.8
) -> Augmentation:
    """The augmentation ``name`` (a :data:`~dsvae.choices.ContrastAugment`) for a data set.

    ``auto`` picks the pitch shift for speech data sets (those with spectrogram settings
    in their meta) and the channel permutation for RGB video.
    """
    check_choice("train.contrast_augment", name, names(ContrastAugment))
    is_speech = "spectrogram" in meta
    is_rgb = len(frame_shape) == 3 and frame_shape[0] == 3
    if name == "auto":
        if not (is_speech or is_rgb):
            raise ConfigError(
                "train.contrast_augment=auto knows speech spectra (from `dsvae data speech`) "
                f"and RGB video; these frames have shape {tuple(frame_shape)}. Set "
                "train.contrast_weight=0, or pass data of one of those kinds"
            )
        name = "pitch" if is_speech else "channels"
    if name in ("channels", "colour"):
        if not is_rgb:
            raise ConfigError(
                f"train.contrast_augment={name} needs RGB frames, got frame shape "
                f"{tuple(frame_shape)}"
            )
        return ChannelPermutation() if name == "channels" else ColourDistortion()
    if not is_speech:
        raise ConfigError(
            "the pitch shift needs a speech data set built by `dsvae data speech` "
            "(its meta.json holds the spectrum statistics)"
        )
    spec = meta["spectrogram"]
    bin_hz = spec["sample_rate"] / spec["n_fft"]
    return PitchShift(spec["mean"], spec["std"], bin_hz, max_factor=pitch_max_factor)
