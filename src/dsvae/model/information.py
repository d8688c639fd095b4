"""Information-based penalties: I(f; z_1:T) from one batch, and a contrastive loss.

The ELBO of Eq. 2 does not stop z_1:T from carrying what f carries: with a learned
prior p(z_t | z_<t), a component of z that stays constant over a sequence costs about
as little as the same information in f. Later work (S3VAE, Zhu et al. 2020; C-DSVAE,
Bai et al. 2021) adds a penalty lambda * I(f; z_1:T) to the loss, estimated on the
minibatch with the weighted sampling of beta-TCVAE (Chen et al. 2018). ``train.mi_weight``
sets lambda; 0, the default, is the paper's objective.

:func:`info_nce` is the contrastive loss C-DSVAE uses to make E_q[z_1:T] ignore an
augmentation that changes only the static factor (``train.contrast_weight``; the
augmentations are in :mod:`dsvae.augment`). :func:`posterior_match` is the stricter
alternative (``train.contrast_loss=match``): the posterior of the copy must equal the
original's, not merely be nearer to it than to the other sequences' of the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal


def pairwise_log_density(dist: Independent, sample: torch.Tensor) -> torch.Tensor:
    """log q(sample_n | x_m) for every pair, shape (B, B): row n, column m.

    ``dist`` is a diagonal Gaussian with batch shape (B, ...) and ``sample`` has its
    shape (B, ..., K); everything after the first dimension is summed, so for
    z_1:T of shape (B, T, Z) this is the density of the whole sequence.
    """
    base = dist.base_dist if isinstance(dist, Independent) else dist
    if not isinstance(base, Normal):
        raise TypeError(f"pairwise_log_density expects a Normal, got {type(base).__name__}")
    if sample.shape != base.loc.shape:
        raise ValueError(
            f"sample shape {tuple(sample.shape)} does not match the distribution's "
            f"{tuple(base.loc.shape)}"
        )
    # (B, 1, ...) against (1, B, ...): sample n under the parameters of sequence m
    loc, scale = base.loc.unsqueeze(0), base.scale.unsqueeze(0)
    log_p = Normal(loc, scale).log_prob(sample.unsqueeze(1))
    return log_p.flatten(start_dim=2).sum(dim=2)


def mutual_information(
    q_f: Independent, f: torch.Tensor, q_z: Independent, z: torch.Tensor
) -> torch.Tensor:
    """Minibatch estimate of I(f; z_1:T) in nats, a scalar.

    With a_nm = log q(f_n | x_m) and b_nm = log q(z_n | x_m), the aggregate
    densities are estimated by averaging over the batch (beta-TCVAE's weighted
    sampling with the data-set size left out, which only shifts the value):

        I = mean_n [ LSE_m(a_nm + b_nm) - LSE_m(a_nm) - LSE_m(b_nm) ] + log B

    It is 0 when no sequence's posterior differs from another's, log B when f and z
    each pick out their own sequence, and differentiable in all parameters. It is an
    estimate, not a bound, and can fall below 0: use :func:`mi_penalty` as a loss.
    """
    a = pairwise_log_density(q_f, f)
    b = pairwise_log_density(q_z, z)
    joint = torch.logsumexp(a + b, dim=1)
    marginals = torch.logsumexp(a, dim=1) + torch.logsumexp(b, dim=1)
    return (joint - marginals).mean() + math.log(f.shape[0])


def mi_penalty(q_f: Independent, f: torch.Tensor, q_z: Independent, z: torch.Tensor) -> tuple:
    """(penalty, estimate): the estimate clipped at 0, since the true value cannot be lower.

    A value below 0 is estimator error. Without the clip, gradient descent keeps
    pushing it down, which removes no information.
    """
    estimate = mutual_information(q_f, f, q_z, z)
    return estimate.clamp(min=0.0), estimate


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Contrastive loss of paired rows: row n of ``a`` should match row n of ``b`` best.

    Cosine similarities over ``temperature`` between every row of ``a`` (B, D) and
    every row of ``b``; the cross-entropy of picking the partner, averaged over both
    directions. log B at chance, 0 when each row picks out its partner with certainty.
    """
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(
            f"info_nce needs two (B, D) tensors of one shape, got {a.shape} and {b.shape}"
        )
    logits = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def posterior_match(q_a: Independent, q_b: Independent) -> torch.Tensor:
    """Symmetric KL, KL(q_a || q_b) + KL(q_b || q_a), per sequence and averaged over the batch.

    ``q_a`` and ``q_b`` are diagonal Gaussians of one batch shape (B, ...) and event
    shape; everything after the first dimension is summed, so for q(z_1:T) of shape
    (B, T, Z) it compares whole sequences. 0 exactly when the two are equal. Unlike
    :func:`info_nce`, which a latent passes as soon as it tells the B sequences of a
    batch apart, this asks the latent to ignore the augmentation entirely.
    """
    base_a = q_a.base_dist if isinstance(q_a, Independent) else q_a
    base_b = q_b.base_dist if isinstance(q_b, Independent) else q_b
    if not (isinstance(base_a, Normal) and isinstance(base_b, Normal)):
        raise TypeError("posterior_match compares two Normal posteriors")
    if base_a.loc.shape != base_b.loc.shape:
        raise ValueError(
            f"posterior_match needs two posteriors of one shape, got "
            f"{tuple(base_a.loc.shape)} and {tuple(base_b.loc.shape)}"
        )
    var_a, var_b = base_a.scale.square(), base_b.scale.square()
    gap = (base_a.loc - base_b.loc).square()
    # the log-variance parts of the two KLs cancel: 0.5 [(va + d)/vb + (vb + d)/va] - 1
    sym = 0.5 * ((var_a + gap) / var_b + (var_b + gap) / var_a) - 1.0
    return sym.flatten(start_dim=1).sum(dim=1).mean()
