"""Per-frame networks: the frame encoder and the decoder of p(x_t | z_t, f).

Two families, chosen by ``FrameNetConfig.kind``: convolutional for images
(C, H, W) and MLP for feature vectors (D,) such as spectra. An encoder maps
(B, T, *frame) to (B, T, E) features; a decoder maps (B, T, K) latents to the
(B, T, *frame) parameters of the likelihood (logits or means).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from dsvae.choices import FrameKind, FrameNorm, Registry
from dsvae.config import FrameNetConfig


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2)


NORMS: Registry[Callable[[int], nn.Module]] = Registry(
    "model.frames.norm",
    FrameNorm,
    {
        "batch": nn.BatchNorm2d,  # over the B*T frames of a batch
        "group": lambda channels: nn.GroupNorm(math.gcd(8, channels), channels),
        "layer": lambda channels: nn.GroupNorm(1, channels),  # one group per frame
        "none": lambda channels: nn.Identity(),
    },
)
"""The normalisation of a conv layer's output, by ``model.frames.norm``, given its channels."""


class ConvFrameEncoder(nn.Module):
    """Image frame (C, H, W) -> feature vector (E,), shared over time."""

    def __init__(self, cfg: FrameNetConfig, frame_shape: tuple[int, int, int]) -> None:
        super().__init__()
        in_ch, size, _ = frame_shape
        layers: list[nn.Module] = []
        for out_ch, stride in zip(cfg.channels, cfg.strides, strict=True):
            layers.append(nn.Conv2d(in_ch, out_ch, cfg.kernel, stride, cfg.kernel // 2))
            layers.append(NORMS[cfg.norm](out_ch))
            layers.append(_act())
            in_ch = out_ch
        self.conv = nn.Sequential(*layers)
        side = size // cfg.downsample
        self.fc = nn.Sequential(nn.Linear(in_ch * side * side, cfg.feature_dim), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        h = self.conv(x.flatten(0, 1))  # (B*T, C', H', W')
        return self.fc(h.flatten(1)).view(b, t, -1)  # (B, T, E)


class ConvFrameDecoder(nn.Module):
    """Latents (K,) -> image parameters (C, H, W); the encoder's mirror image."""

    def __init__(self, cfg: FrameNetConfig, frame_shape: tuple[int, int, int], in_dim: int) -> None:
        super().__init__()
        out_ch, size, _ = frame_shape
        self.side = size // cfg.downsample
        self.top_ch = cfg.channels[-1]
        self.fc = nn.Sequential(nn.Linear(in_dim, self.top_ch * self.side**2), _act())
        targets = [out_ch, *cfg.channels[:-1]]  # layer i maps channels[i] -> targets[i]
        layers: list[nn.Module] = []
        for i in reversed(range(len(cfg.channels))):
            layers.append(_upsample(cfg.channels[i], targets[i], cfg.kernel, cfg.strides[i]))
            if i > 0:
                layers.append(NORMS[cfg.norm](targets[i]))
                layers.append(_act())
        self.deconv = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        b, t = latents.shape[:2]
        h = self.fc(latents.flatten(0, 1)).view(b * t, self.top_ch, self.side, self.side)
        out = self.deconv(h)  # (B*T, C, H, W)
        return out.view(b, t, *out.shape[1:])


def _upsample(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Module:
    if stride == 1:
        return nn.Conv2d(in_ch, out_ch, kernel, 1, kernel // 2)
    # (in - 1) * 2 - 2 * (k // 2) + k + 1 = 2 * in for odd k
    return nn.ConvTranspose2d(in_ch, out_ch, kernel, 2, kernel // 2, output_padding=1)


def _mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(_act())
    return nn.Sequential(*layers)


class MlpFrameEncoder(nn.Module):
    """Vector frame (D,) -> feature vector (E,), shared over time."""

    def __init__(self, cfg: FrameNetConfig, frame_shape: tuple[int]) -> None:
        super().__init__()
        self.net = _mlp([frame_shape[0], *cfg.hidden, cfg.feature_dim], last_activation=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, T, D) -> (B, T, E)


class MlpFrameDecoder(nn.Module):
    """Latents (K,) -> vector parameters (D,)."""

    def __init__(self, cfg: FrameNetConfig, frame_shape: tuple[int], in_dim: int) -> None:
        super().__init__()
        self.net = _mlp([in_dim, *reversed(cfg.hidden), frame_shape[0]], last_activation=False)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net(latents)  # (B, T, K) -> (B, T, D)


FRAME_NETWORKS: Registry[tuple[type[nn.Module], type[nn.Module]]] = Registry(
    "model.frames.kind",
    FrameKind,
    {"conv": (ConvFrameEncoder, ConvFrameDecoder), "mlp": (MlpFrameEncoder, MlpFrameDecoder)},
)
"""The (encoder, decoder) family that each ``model.frames.kind`` names."""


def build_frame_networks(
    cfg: FrameNetConfig, frame_shape: tuple[int, ...], latent_dim: int
) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder of the family ``cfg.kind`` for frames of ``frame_shape``."""
    encoder_cls, decoder_cls = FRAME_NETWORKS[cfg.kind]
    return encoder_cls(cfg, frame_shape), decoder_cls(cfg, frame_shape, latent_dim)
