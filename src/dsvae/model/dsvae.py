"""The Disentangled Sequential Autoencoder (Li & Mandt 2018, Section 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Independent, kl_divergence

from dsvae.config import ModelConfig
from dsvae.errors import ConfigError, DataError
from dsvae.model.distributions import FrameLikelihood, rsample, standard_normal
from dsvae.model.frames import build_frame_networks
from dsvae.model.posteriors import DYNAMICS_POSTERIORS, StaticPosterior
from dsvae.model.prior import DynamicsPrior


def check_frames(x: torch.Tensor, frame_shape: tuple[int, ...]) -> None:
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


def elbo_terms(
    recon: torch.Tensor, kl_f: torch.Tensor, kl_z: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Batch means of the per-sequence (B,) terms, and the ELBO = recon - KL_f - KL_z."""
    return {
        "recon": recon.mean(),
        "kl_f": kl_f.mean(),
        "kl_z": kl_z.mean(),
        "elbo": (recon - kl_f - kl_z).mean(),
    }


def weighted_loss(terms: dict[str, torch.Tensor], beta_f: float, beta_z: float) -> torch.Tensor:
    """-(recon - beta_f KL_f - beta_z KL_z); the negative ELBO when both betas are 1."""
    return -(terms["recon"] - beta_f * terms["kl_f"] - beta_z * terms["kl_z"])


class SequenceModel(nn.Module):
    """What every sequence model here shares: frames in, per-frame features, q(f | x_1:T).

    Subclasses set ``config``, ``encoder`` and ``static_posterior``.
    """

    config: ModelConfig

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return tuple(self.config.frame_shape)

    def check_frames(self, x: torch.Tensor) -> None:
        """Raise :class:`DataError` unless ``x`` is (B, T, *frame_shape) floats."""
        check_frames(x, self.frame_shape)

    def encode_features(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, E) of frames (B, T, *frame)."""
        self.check_frames(x)
        return self.encoder(x)

    def posterior_f(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Independent:
        """q(f | x_1:T), optionally from the observed frames (``mask`` (B, T)) only."""
        return self.static_posterior(features, mask)

    def loss(self, out: DSVAEOutput, beta_f: float = 1.0, beta_z: float = 1.0) -> torch.Tensor:
        """Negative (weighted) ELBO per sequence; beta_f = beta_z = 1 is Eq. 2 exactly."""
        return weighted_loss(out.terms, beta_f, beta_z)


@dataclass
class DSVAEOutput:
    """Everything one pass of :meth:`DSVAE.forward` computes.

    Distributions have batch shape (B,) for f and (B, T) for z and x. ``terms``
    holds per-sequence averages over the batch: ``recon`` = E_q log p(x_1:T | z, f),
    ``kl_f``, ``kl_z`` and ``elbo`` = recon - kl_f - kl_z (Eq. 2, one sample).
    """

    q_f: Independent  # q(f | x_1:T), event (F,)
    q_z: Independent  # q(z_t | x_t) or q(z_t | f, x_1:T), event (Z,)
    p_f: Independent  # N(0, I)
    p_z: Independent  # p(z_t | z_<t) evaluated on the posterior sample z_<t
    p_x: Independent  # p(x_t | z_t, f)
    f: torch.Tensor  # (B, F) posterior sample
    z: torch.Tensor  # (B, T, Z) posterior sample
    terms: dict[str, torch.Tensor]

    @property
    def reconstruction(self) -> torch.Tensor:
        """Mean of p(x_t | z_t, f): probabilities (Bernoulli) or means (Gaussian)."""
        return self.p_x.mean


class DSVAE(SequenceModel):
    """p(x_1:T, z_1:T, f) = p(f) prod_t p(z_t | z_<t) p(x_t | z_t, f)  (Eq. 1).

    Inference: q(f | x_1:T) and either the factorised q(z_t | x_t) (Eq. 3) or the
    full q(z_1:T | f, x_1:T) (Eq. 4), chosen by ``config.posterior``. The model
    knows nothing of training loops or devices: :meth:`forward` returns the
    distributions and the ELBO terms.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.frame_shape is None:
            raise ConfigError(
                "model.frame_shape is not set; train fills it in from the data set, "
                "or set it, e.g. model.frame_shape=[1, 32, 32]"
            )
        if config.dynamics != "stochastic":
            raise ConfigError(
                f"DSVAE has stochastic dynamics; for model.dynamics={config.dynamics} use build_model"
            )
        self.config = config
        shape = tuple(config.frame_shape)
        e, h = config.frames.feature_dim, config.hidden_dim
        self.encoder, self.decoder = build_frame_networks(
            config.frames, shape, config.z_dim + config.f_dim
        )
        self.static_posterior = StaticPosterior(e, h, config.f_dim)
        self.dynamics_posterior = DYNAMICS_POSTERIORS[config.posterior](
            e, h, config.z_dim, config.f_dim
        )
        self.prior = DynamicsPrior(config.z_dim, h)
        self.likelihood = FrameLikelihood(config.likelihood, shape)

    # ------------------------------------------------------------------ inference

    def posterior_z(
        self, features: torch.Tensor, f: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Independent:
        """q(z_t | x_t) (factorised) or q(z_1:T | f, x_1:T) (full); f is ignored by the former.

        With ``mask`` (B, T) the full posterior reads the observed frames only.
        """
        return self.dynamics_posterior(features, f, mask)

    # ------------------------------------------------------------------ generation

    def decode(self, z: torch.Tensor, f: torch.Tensor) -> Independent:
        """p(x_t | z_t, f) for z (B, T, Z) and f (B, F)."""
        f_seq = f.unsqueeze(1).expand(-1, z.shape[1], -1)  # (B, T, F)
        return self.likelihood(self.decoder(torch.cat([z, f_seq], dim=-1)))

    def prior_f(self, batch: int, like: torch.Tensor | None = None) -> Independent:
        like = like if like is not None else self.prior.head.weight
        return standard_normal((batch, self.config.f_dim), like)

    def sample_f(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """f ~ p(f) = N(0, I), shape (B, F)."""
        return rsample(self.prior_f(batch), generator)

    def sample_z(
        self, batch: int, length: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z_1:T ~ p(z_1:T) by ancestral sampling of the LSTM prior, shape (B, T, Z)."""
        return self.prior.sample(batch, length, generator=generator)

    # ------------------------------------------------------------------ ELBO

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> DSVAEOutput:
        """One-sample ELBO of Eq. 2 for frames ``x`` (B, T, *frame).

        KL_f is analytic. KL_z is analytic per step, with the prior p(z_t | z_<t)
        evaluated on the posterior sample z_<t (teacher forcing), summed over t.
        """
        features = self.encode_features(x)  # (B, T, E)
        q_f = self.posterior_f(features)
        f = rsample(q_f, generator)  # (B, F)
        q_z = self.posterior_z(features, f)
        z = rsample(q_z, generator)  # (B, T, Z)
        p_z = self.prior(z)  # p(z_t | z_<t), batch (B, T)
        p_f = self.prior_f(x.shape[0], like=f)
        p_x = self.decode(z, f)

        recon = p_x.log_prob(x).sum(dim=1)  # (B,)
        kl_f = kl_divergence(q_f, p_f)  # (B,)
        kl_z = kl_divergence(q_z, p_z).sum(dim=1)  # (B,)
        return DSVAEOutput(q_f, q_z, p_f, p_z, p_x, f, z, elbo_terms(recon, kl_f, kl_z))

    def impute(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        sample: bool,
        generator: torch.Generator | None,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Fill in the frames where ``mask`` (B, T) is False with the prior dynamics.

        f ~ q(f | observed frames); for an observed step z_t comes from the posterior
        (whose networks read only the observed frames), for a missing step from
        p(z_t | z_<t) given the z's before it. Every frame is then decoded.
        ``features`` = ``encode_features(x)`` may be passed in to reuse them across
        masks (they are per frame, so a mask does not change them).
        """
        draw = (lambda d: rsample(d, generator)) if sample else (lambda d: d.mean)
        if features is None:
            features = self.encode_features(x)
        f = draw(self.posterior_f(features, mask))
        z_post = draw(self.posterior_z(features, f, mask))  # (B, T, Z)
        z_prev, state, steps = torch.zeros_like(z_post[:, 0]), None, []
        for step in range(x.shape[1]):
            prior, state = self.prior.step(z_prev, state)
            z_prev = torch.where(mask[:, step, None], z_post[:, step], draw(prior))
            steps.append(z_prev)
        return self.decode(torch.stack(steps, dim=1), f).mean
