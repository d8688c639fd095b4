"""Deterministic-dynamics baselines of Section 4.3: LSTM-f and LSTM-c.

p(x_1:T, z, f) = p(f) p(z) prod_t p(x_t | z, f), where a *global* z drives a
deterministic LSTM and x_t is decoded from NN(h_t, f):

* LSTM-f: h_0 = z, h_t = LSTM(h_{t-1})  (z is forward-propagated);
* LSTM-c: h_0 = 0, h_t = LSTM(h_{t-1}, z)  (the LSTM is conditioned on z at every
  step, the transition of the FHVAE of Hsu et al. 2017).

They share the frame encoder and decoder family, the static posterior q(f | x_1:T)
and the observation model with :class:`~dsvae.model.DSVAE`; q(z | x_1:T) is a
bi-LSTM like q(f | x_1:T).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent

from dsvae.choices import BaselineDynamics, names
from dsvae.config import ModelConfig
from dsvae.errors import ArgumentError, ConfigError
from dsvae.model.distributions import FrameLikelihood, rsample, standard_normal
from dsvae.model.frames import build_frame_networks
from dsvae.model.posteriors import StaticPosterior
from dsvae.model.recurrent import LSTM
from dsvae.model.sequence import SequenceModel


class DeterministicDynamics(nn.Module):
    """h_1:T from a global z: ``lstm-f`` (h_0 = z) or ``lstm-c`` (z as every step's input)."""

    def __init__(self, kind: str, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "lstm-f":
            # the LSTM state has hidden_dim units; a linear map lifts z to (h_0, c_0)
            self.init = nn.Linear(z_dim, 2 * hidden_dim)
            self.lstm = LSTM(1, hidden_dim, batch_first=True)
        else:
            self.lstm = LSTM(z_dim, hidden_dim, batch_first=True)

    def forward(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """z (B, Z) -> h_1:T (B, T, H)."""
        b = z.shape[0]
        if self.kind == "lstm-f":
            h0, c0 = self.init(z).chunk(2, dim=-1)
            state = (torch.tanh(h0).unsqueeze(0).contiguous(), c0.unsqueeze(0).contiguous())
            h, _ = self.lstm(z.new_zeros(b, length, 1), state)
        else:
            h, _ = self.lstm(z.unsqueeze(1).expand(-1, length, -1))
        return h


class DeterministicSequenceVAE(SequenceModel):
    """LSTM-f / LSTM-c baseline (``config.dynamics``) with the DSVAE's interface and ELBO.

    z is global: ``posterior_z`` has batch shape (B,) and ``decode`` needs the number of
    frames to unroll the deterministic dynamics for.

    ``config.z_dim`` is the size of the global z (64 in the paper) and
    ``config.hidden_dim`` that of the LSTMs (512 in the paper).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.frame_shape is None:
            raise ConfigError("model.frame_shape is not set; train fills it in from the data set")
        if config.dynamics not in names(BaselineDynamics):
            raise ConfigError(
                f"DeterministicSequenceVAE needs dynamics {' or '.join(names(BaselineDynamics))}, "
                f"got {config.dynamics!r}"
            )
        self.config = config
        shape = tuple(config.frame_shape)
        e, h = config.frames.feature_dim, config.hidden_dim
        self.encoder, self.decoder = build_frame_networks(config.frames, shape, h + config.f_dim)
        self.static_posterior = StaticPosterior(e, h, config.f_dim)
        self.dynamics_posterior = StaticPosterior(e, h, config.z_dim)  # q(z | x_1:T), global
        self.dynamics = DeterministicDynamics(config.dynamics, config.z_dim, h)
        self.likelihood = FrameLikelihood(config.likelihood, shape)

    def posterior_z(
        self, features: torch.Tensor, f: torch.Tensor | None, mask: torch.Tensor | None = None
    ) -> Independent:
        """q(z | x_1:T), global: batch (B,), event (Z,); with ``mask`` only observed frames.

        This posterior is not conditioned on f, so ``f`` is not read (it may be None).
        """
        del f
        return self.dynamics_posterior(features, mask)

    def prior_z(self, z: torch.Tensor) -> Independent:
        """p(z) = N(0, I) for a global z (B, Z)."""
        return standard_normal(z.shape, z)

    def decode(self, z: torch.Tensor, f: torch.Tensor, length: int | None = None) -> Independent:
        """p(x_t | z, f) for t = 1..length from h_t = LSTM(...) and f; z (B, Z), f (B, F)."""
        if length is None:
            raise ArgumentError(
                "a global z does not say how many frames to decode; pass the length"
            )
        return self._decode_frames(self.dynamics(z, length), f)  # h: (B, T, H)

    def impute(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        sample: bool,
        generator: torch.Generator | None,
        features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Infer f and z from the observed frames only, then decode all T frames.

        ``features`` as in :meth:`dsvae.model.DSVAE.impute`.
        """
        if features is None:
            features = self.encode_features(x)
        q_f, q_z = self.posterior_f(features, mask), self.posterior_z(features, None, mask)
        f = rsample(q_f, generator) if sample else q_f.mean
        z = rsample(q_z, generator) if sample else q_z.mean
        return self.decode(z, f, x.shape[1]).mean
