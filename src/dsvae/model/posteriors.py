"""Inference networks: q(f | x_1:T) and the two posteriors over z_1:T (Eqs. 3 and 4)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dsvae.choices import Posterior, Registry
from dsvae.model.distributions import diag_gaussian
from dsvae.model.recurrent import LSTM, RNN


def compact_observed(
    features: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's observed steps to the front, keeping their order.

    ``features`` (B, T, E), ``mask`` (B, T) bool with at least one True per row.
    Returns the compacted features (B, T, E) (padding after the observed steps)
    and the number of observed steps per row (B,).
    """
    order = _observed_first(mask)
    gathered = features.gather(1, order.unsqueeze(-1).expand_as(features))
    return gathered, mask.sum(dim=1)


def _observed_first(mask: torch.Tensor) -> torch.Tensor:
    """Per row, the time indices with observed steps first, each group in time order."""
    t = mask.shape[1]
    steps = torch.arange(t, device=mask.device).expand_as(mask)
    return torch.where(mask, steps, steps + t).argsort(dim=1)  # (B, T)


def _packed(features: torch.Tensor, mask: torch.Tensor):
    compact, lengths = compact_observed(features, mask)
    return pack_padded_sequence(compact, lengths.cpu(), batch_first=True, enforce_sorted=False)


class StaticPosterior(nn.Module):
    """q(f | x_1:T): a bi-LSTM over the frame features; f from its two final states."""

    def __init__(self, feature_dim: int, hidden_dim: int, f_dim: int) -> None:
        super().__init__()
        self.lstm = LSTM(feature_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden_dim, 2 * f_dim)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> Independent:
        """``features`` (B, T, E); ``mask`` (B, T) bool keeps only the observed frames."""
        if mask is None:
            _, (h, _) = self.lstm(features)  # h: (2, B, H)
        else:
            _, (h, _) = self.lstm(_packed(features, mask))
        summary = torch.cat([h[0], h[1]], dim=-1)  # (B, 2H): forward end, backward end
        return diag_gaussian(self.head(summary))  # event (F,)


class FactorisedDynamicsPosterior(nn.Module):
    """Eq. 3, "factorised q": q(z_t | x_t), an MLP on each frame's features alone."""

    def __init__(self, feature_dim: int, hidden_dim: int, z_dim: int, f_dim: int) -> None:
        super().__init__()
        del f_dim  # the factorised posterior does not see f
        self.net = nn.Sequential(
            nn.Linear(feature_dim, hidden_dim), nn.LeakyReLU(0.2), nn.Linear(hidden_dim, 2 * z_dim)
        )

    def forward(
        self, features: torch.Tensor, f: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Independent:
        """``features`` (B, T, E) -> q(z_t | x_t) with batch (B, T), event (Z,).

        Each step sees only its own frame, so ``mask`` changes nothing.
        """
        del f, mask
        return diag_gaussian(self.net(features))


class FullDynamicsPosterior(nn.Module):
    """Eq. 4, "full q": q(z_1:T | f, x_1:T).

    A bi-LSTM over [features_t, f] followed by a forward RNN over the bi-LSTM
    states, so that z_t depends on f and on the whole sequence.
    """

    def __init__(self, feature_dim: int, hidden_dim: int, z_dim: int, f_dim: int) -> None:
        super().__init__()
        self.bilstm = LSTM(feature_dim + f_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.rnn = RNN(2 * hidden_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 2 * z_dim)

    def forward(
        self, features: torch.Tensor, f: torch.Tensor, mask: torch.Tensor | None = None
    ) -> Independent:
        """``features`` (B, T, E), ``f`` (B, F) -> q(z_t | f, x_1:T) with batch (B, T).

        With ``mask`` (B, T) the networks read the observed frames only, in order,
        and step t's posterior is returned at its own position; positions of
        missing frames hold the values of padding and are to be ignored.
        """
        t = features.shape[1]
        f_seq = f.unsqueeze(1).expand(-1, t, -1)  # (B, T, F)
        inputs = torch.cat([features, f_seq], dim=-1)
        if mask is None:
            h, _ = self.bilstm(inputs)  # (B, T, 2H)
            g, _ = self.rnn(h)  # (B, T, H)
            return diag_gaussian(self.head(g))
        h, _ = self.bilstm(_packed(inputs, mask))
        g, _ = pad_packed_sequence(self.rnn(h)[0], batch_first=True, total_length=t)
        params = self.head(g)  # (B, T, 2Z), observed steps first
        inverse = _observed_first(mask).argsort(dim=1)
        return diag_gaussian(params.gather(1, inverse.unsqueeze(-1).expand_as(params)))


DYNAMICS_POSTERIORS: Registry[type[nn.Module]] = Registry(
    "model.posterior",
    Posterior,
    {"factorised": FactorisedDynamicsPosterior, "full": FullDynamicsPosterior},
)
"""The posterior over z_1:T that each ``model.posterior`` names (Eqs. 3 and 4)."""
