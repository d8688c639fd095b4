"""A naive DSVAE training step, written the way straightforward implementations do it.

It is the reference the benchmark compares against, on the *same network* (the
frame encoder/decoder and posteriors are dsvae's own modules, with the same
weights), differing only in how the step is run:

* the prior p(z_t | z_<t) is a Python loop over time of an ``nn.LSTMCell``;
* everything is float32 and NCHW;
* every step turns the uint8 batch into float frames on the host and copies them
  to the device;
* plain Adam, and the loss is read back with ``.item()`` every step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.distributions import kl_divergence

from dsvae.model import DSVAE
from dsvae.model.distributions import diag_gaussian, rsample


class NaivePrior(nn.Module):
    """p(z_t | z_<t) with an LSTMCell stepped in Python, weights copied from ``prior``."""

    def __init__(self, model: DSVAE) -> None:
        super().__init__()
        lstm = model.prior.lstm
        self.cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
        with torch.no_grad():
            self.cell.weight_ih.copy_(lstm.weight_ih_l0)
            self.cell.weight_hh.copy_(lstm.weight_hh_l0)
            self.cell.bias_ih.copy_(lstm.bias_ih_l0)
            self.cell.bias_hh.copy_(lstm.bias_hh_l0)
        self.head = model.prior.head

    def forward(self, z: torch.Tensor):
        b, t, _ = z.shape
        h = z.new_zeros(b, self.cell.hidden_size)
        c = z.new_zeros(b, self.cell.hidden_size)
        z_prev = z.new_zeros(b, z.shape[-1])
        params = []
        for step in range(t):
            h, c = self.cell(z_prev, (h, c))
            params.append(self.head(h))
            z_prev = z[:, step]
        return diag_gaussian(torch.stack(params, dim=1))


class NaiveStep:
    """Forward, ELBO, backward and Adam for one batch, the straightforward way."""

    def __init__(self, model: DSVAE, lr: float, device: torch.device) -> None:
        self.model = model.to(device)
        self.prior = NaivePrior(model).to(device)
        params = [p for n, p in model.named_parameters() if not n.startswith("prior.lstm")]
        self.optimizer = torch.optim.Adam([*params, *self.prior.cell.parameters()], lr=lr)
        self.device = device

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        features = m.encode_features(x)
        q_f = m.posterior_f(features)
        f = rsample(q_f)
        q_z = m.posterior_z(features, f)
        z = rsample(q_z)
        p_z = self.prior(z)
        recon = m.decode(z, f).log_prob(x).sum(dim=1)
        kl_f = kl_divergence(q_f, m.prior_f(x.shape[0], like=f))
        kl_z = kl_divergence(q_z, p_z).sum(dim=1)
        return -(recon - kl_f - kl_z).mean()

    def __call__(self, batch: np.ndarray) -> float:
        x = host_frames(batch).to(self.device)  # float32 copied every step
        loss = self.loss(x)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()  # a host synchronisation every step


def host_frames(batch: np.ndarray) -> torch.Tensor:
    """uint8 (B, T, H, W, C) or float (B, T, D) on the host -> float32 model input."""
    x = torch.from_numpy(batch).float()
    if x.ndim == 5:
        x = x.div(255.0).permute(0, 1, 4, 2, 3).contiguous()  # (B, T, C, H, W)
    return x
