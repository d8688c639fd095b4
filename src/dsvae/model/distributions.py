"""Diagonal Gaussians and the observation model p(x_t | z_t, f)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Bernoulli, Distribution, Independent, Normal

from dsvae.config import LikelihoodConfig

MIN_SCALE = 1e-4


def diag_gaussian(params: torch.Tensor) -> Independent:
    """Split (..., 2K) into loc and softplus scale: a Normal with event shape (K,).

    Parameters are taken in float32 even under bf16 autocast, so that KLs and
    log-densities (and the ELBO's sums of them) are computed in full precision.
    """
    loc, raw = params.float().chunk(2, dim=-1)
    return Independent(Normal(loc, F.softplus(raw) + MIN_SCALE), 1)


def standard_normal(shape: torch.Size | tuple[int, ...], like: torch.Tensor) -> Independent:
    """N(0, I) with batch shape ``shape[:-1]`` and event shape ``shape[-1:]``."""
    zeros = like.new_zeros(shape)
    return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def rsample(dist: Distribution, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised sample of a (possibly Independent) Normal with an explicit generator."""
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if not isinstance(base, Normal):
        raise TypeError(f"rsample expects a Normal, got {type(base).__name__}")
    eps = torch.randn(
        base.loc.shape, generator=generator, device=base.loc.device, dtype=base.loc.dtype
    )
    return base.loc + base.scale * eps


class FrameLikelihood(nn.Module):
    """p(x_t | z_t, f) from the decoder's output: Bernoulli logits or a Gaussian mean.

    The returned distribution has batch shape (B, T) and the frame as its event.
    """

    def __init__(self, cfg: LikelihoodConfig, frame_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.cfg = cfg
        self.event_dims = len(frame_shape)
        if cfg.kind == "gaussian" and cfg.scale == "learned":
            # one log-scale per channel (images) or per dimension (vectors)
            shape = (frame_shape[0],) + (1,) * (len(frame_shape) - 1)
            # on the CPU even while the model is built on the meta device (to be sized)
            init = torch.log(torch.tensor(cfg.scale_value, device="cpu"))
            self.log_scale = nn.Parameter(torch.full(shape, float(init)))
        else:
            self.register_parameter("log_scale", None)

    def forward(self, out: torch.Tensor) -> Independent:
        out = out.float()  # log p(x | z, f) in float32, also under bf16 autocast
        if self.cfg.kind == "bernoulli":
            return Independent(Bernoulli(logits=out, validate_args=False), self.event_dims)
        mean = torch.sigmoid(out) if self.cfg.mean_activation == "sigmoid" else out
        if self.log_scale is not None:
            scale = self.log_scale.exp().clamp_min(self.cfg.min_scale).expand_as(mean)
        else:
            scale = torch.full_like(mean, self.cfg.scale_value)
        return Independent(Normal(mean, scale), self.event_dims)
