"""The learned dynamics prior p(z_t | z_<t) of Eq. 1, with z_0 = 0."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent

from dsvae.model.distributions import diag_gaussian, rsample
from dsvae.model.recurrent import LSTM

LSTMState = tuple[torch.Tensor, torch.Tensor]


class DynamicsPrior(nn.Module):
    """p(z_t | z_<t): an LSTM reads z_<t and a linear head gives a diagonal Gaussian.

    Training evaluates the prior on the *posterior* samples (teacher forcing):
    step t reads z_{t-1} drawn from q, so KL[q(z_t | ...) || p(z_t | z_<t)] compares
    the two distributions over the same history, as Eq. 2 requires.
    """

    def __init__(self, z_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.lstm = LSTM(z_dim, hidden_dim, batch_first=True)
        self.head = nn.Linear(hidden_dim, 2 * z_dim)

    def forward(self, z: torch.Tensor) -> Independent:
        """Teacher-forced prior for every step of ``z`` (B, T, Z), in one LSTM call.

        Step t reads z_{t-1} (z_0 = 0), so the result p(z_t | z_<t) has batch
        shape (B, T) and event shape (Z,).
        """
        shifted = torch.cat([torch.zeros_like(z[:, :1]), z[:, :-1]], dim=1)  # (B, T, Z)
        h, _ = self.lstm(shifted)  # (B, T, H)
        return diag_gaussian(self.head(h))

    def step(self, z_prev: torch.Tensor, state: LSTMState | None) -> tuple[Independent, LSTMState]:
        """One step: p(z_t | z_<t) from z_{t-1} (B, Z) and the LSTM state after z_<t-1."""
        h, state = self.lstm(z_prev.unsqueeze(1), state)  # (B, 1, H)
        return diag_gaussian(self.head(h[:, 0])), state

    def sample(
        self,
        batch: int,
        length: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Ancestral sample z_1:T ~ p(z_1:T), shape (B, T, Z)."""
        device = device if device is not None else self.head.weight.device
        z_prev = torch.zeros(batch, self.z_dim, device=device, dtype=self.head.weight.dtype)
        state, out = None, []
        for _ in range(length):
            dist, state = self.step(z_prev, state)
            z_prev = rsample(dist, generator)
            out.append(z_prev)
        return torch.stack(out, dim=1)
