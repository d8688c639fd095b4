"""What every sequence model here shares: the interface :mod:`dsvae.ops` uses and the ELBO.

Two models implement it, the DSVAE (:mod:`dsvae.model.dsvae`, per-step z_t with the
LSTM prior) and the deterministic-dynamics baselines (:mod:`dsvae.model.deterministic`,
one global z). Each provides

* ``posterior_z(features, f, mask=None)``: q(z | ...) from the frame features;
* ``prior_z(z)``: p(z) evaluated where the ELBO needs it;
* ``decode(z, f, length=None)``: p(x_t | z, f) for every frame;
* ``impute(x, mask, sample, generator, features=None)``: frames filled in from the
  observed ones;

and inherits from :class:`SequenceModel` the frame encoder, q(f | x_1:T), p(f) and the
one-sample ELBO of Eq. 2 (:meth:`SequenceModel.forward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent, kl_divergence

from dsvae.config import ModelConfig
from dsvae.errors import DataError
from dsvae.model.distributions import rsample, standard_normal
from dsvae.model.objective import elbo_terms, weighted_loss


def check_input_batch(x: torch.Tensor, frame_shape: tuple[int, ...]) -> None:
    """Raise :class:`DataError` unless ``x`` is (B, T, *frame_shape) floats."""
    if x.ndim != 2 + len(frame_shape) or tuple(x.shape[2:]) != tuple(frame_shape):
        raise DataError(
            f"frames must have shape (B, T, {', '.join(map(str, frame_shape))}) for this "
            f"model, got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise DataError(
            f"frames must be floats (use dsvae.data.prepare_frames on uint8 data), got {x.dtype}"
        )


@dataclass
class DSVAEOutput:
    """Everything one pass of :meth:`SequenceModel.forward` computes.

    Distributions have batch shape (B,) for f and for a global z, (B, T) for a per-step z
    and for x. ``terms`` holds per-sequence averages over the batch: ``recon`` =
    E_q log p(x_1:T | z, f), ``kl_f``, ``kl_z`` and ``elbo`` = recon - kl_f - kl_z
    (Eq. 2, one sample).
    """

    q_f: Independent  # q(f | x_1:T), event (F,)
    q_z: Independent  # q(z_t | x_t), q(z_t | f, x_1:T) or a global q(z | x_1:T), event (Z,)
    p_f: Independent  # N(0, I)
    p_z: Independent  # p(z_t | z_<t) on the posterior sample z_<t, or a global N(0, I)
    p_x: Independent  # p(x_t | z_t, f)
    f: torch.Tensor  # (B, F) posterior sample
    z: torch.Tensor  # (B, T, Z) or, global, (B, Z) posterior sample
    terms: dict[str, torch.Tensor]

    @property
    def reconstruction(self) -> torch.Tensor:
        """Mean of p(x_t | z_t, f): probabilities (Bernoulli) or means (Gaussian)."""
        return self.p_x.mean


class SequenceModel(nn.Module):
    """Frames in, per-frame features, q(f | x_1:T), p(f) and the one-sample ELBO.

    Subclasses set ``config``, ``encoder``, ``decoder``, ``static_posterior`` and
    ``likelihood``, and define ``posterior_z``, ``prior_z``, ``decode`` and ``impute``
    with the signatures of the module docstring.
    """

    config: ModelConfig

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.config.frame_shape)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` unless ``x`` is (B, T, *frame_shape) floats."""
        check_input_batch(x, self.frame_shape)

    def encode_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, E) of frames (B, T, *frame)."""
        self.check_input(x)
        return self.encoder(x)

    def posterior_f(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Independent:
        """q(f | x_1:T), optionally from the observed frames (``mask`` (B, T)) only."""
        return self.static_posterior(features, mask)

    def prior_f(self, batch: int, like: torch.Tensor | None = None) -> Independent:
        """p(f) = N(0, I) with batch (B,), event (F,), on the device and dtype of ``like``."""
        like = like if like is not None else self.static_posterior.head.weight
        return standard_normal((batch, self.config.f_dim), like)

    def sample_f(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """f ~ p(f) = N(0, I), shape (B, F)."""
        return rsample(self.prior_f(batch), generator)

    def _decode_frames(self, h: torch.Tensor, f: torch.Tensor) -> Independent:
        """p(x_t | h_t, f) from per-step latents h (B, T, K) and f (B, F)."""
        f_seq = f.unsqueeze(1).expand(-1, h.shape[1], -1)  # (B, T, F)
        return self.likelihood(self.decoder(torch.cat([h, f_seq], dim=-1)))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> DSVAEOutput:
        """One-sample ELBO of Eq. 2 for frames ``x`` (B, T, *frame).

        f ~ q(f | x_1:T), then z ~ q(z | ...) given that f (both from ``generator``).
        KL_f is analytic; KL_z is analytic per step against ``prior_z`` (for the DSVAE
        the prior p(z_t | z_<t) on the posterior sample z_<t, teacher forcing), summed
        over t.
        """
        features = self.encode_features(x)  # (B, T, E)
        q_f = self.posterior_f(features)
        f = rsample(q_f, generator)  # (B, F)
        q_z = self.posterior_z(features, f)
        z = rsample(q_z, generator)  # (B, T, Z) or (B, Z)
        p_f = self.prior_f(x.shape[0], like=f)
        p_z = self.prior_z(z)
        p_x = self.decode(z, f, x.shape[1])

        recon = p_x.log_prob(x).sum(dim=1)  # (B,)
        kl_f = kl_divergence(q_f, p_f)  # (B,)
        kl_z = kl_divergence(q_z, p_z)  # (B, T) or (B,)
        kl_z = kl_z.reshape(kl_z.shape[0], -1).sum(dim=1)  # (B,)
        return DSVAEOutput(q_f, q_z, p_f, p_z, p_x, f, z, elbo_terms(recon, kl_f, kl_z))

    def loss(self, out: DSVAEOutput, beta_f: float = 1.0, beta_z: float = 1.0) -> torch.Tensor:
        """Negative (weighted) ELBO per sequence; beta_f = beta_z = 1 is Eq. 2 exactly."""
        return weighted_loss(out.terms, beta_f, beta_z)
