"""The Disentangled Sequential Autoencoder (Li & Mandt 2018, Section 2)."""

from __future__ import annotations

import torch
from torch.distributions import Independent

from dsvae.config import ModelConfig
from dsvae.errors import ConfigError, DataError
from dsvae.model.distributions import FrameLikelihood, rsample
from dsvae.model.frames import build_frame_networks
from dsvae.model.posteriors import DYNAMICS_POSTERIORS, StaticPosterior
from dsvae.model.prior import DynamicsPrior
from dsvae.model.sequence import SequenceModel


class DSVAE(SequenceModel):
    """p(x_1:T, z_1:T, f) = p(f) prod_t p(z_t | z_<t) p(x_t | z_t, f)  (Eq. 1).

    Inference: q(f | x_1:T) and either the factorised q(z_t | x_t) (Eq. 3) or the
    full q(z_1:T | f, x_1:T) (Eq. 4), chosen by ``config.posterior``. The model
    knows nothing of training loops or devices: :meth:`forward` (shared with the
    baselines, :class:`~dsvae.model.sequence.SequenceModel`) returns the distributions
    and the ELBO terms.
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

    def prior_z(self, z: torch.Tensor) -> Independent:
        """p(z_t | z_<t) for every step of a posterior sample z (B, T, Z) (teacher forcing)."""
        return self.prior(z)

    # ------------------------------------------------------------------ generation

    def decode(self, z: torch.Tensor, f: torch.Tensor, length: int | None = None) -> Independent:
        """p(x_t | z_t, f) for z (B, T, Z) and f (B, F); ``length``, if given, must be T."""
        if length is not None and length != z.shape[1]:
            raise DataError(f"z holds {z.shape[1]} steps, so the length must be {z.shape[1]}")
        return self._decode_frames(z, f)

    def sample_z(
        self, batch: int, length: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """z_1:T ~ p(z_1:T) by ancestral sampling of the LSTM prior, shape (B, T, Z)."""
        return self.prior.sample(batch, length, generator=generator)

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
