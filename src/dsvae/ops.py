"""Every operation of Section 2 as a function of a trained :class:`~dsvae.model.DSVAE`.

Encoding, decoding, reconstruction, the swap and imputation work on any
:class:`~dsvae.model.sequence.SequenceModel` (the deterministic baselines of Section 4.3
too, whose z is global); generation from the prior needs the DSVAE's p(z_1:T).
All functions take model-space frames (B, T, *frame) as floats (see
``dsvae.data.prepare_frames``), run without gradients, and take randomness only
from an explicit ``generator``: the same generator state gives the same output.
They put the model in eval mode for the call (restoring its mode after) and
return the mean of p(x_t | z_t, f) (probabilities for Bernoulli frames).
Encodings use the posterior means unless ``sample=True``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

import torch
from torch.distributions import Independent

from dsvae.errors import ArgumentError, DataError
from dsvae.model.distributions import rsample
from dsvae.model.dsvae import DSVAE
from dsvae.model.sequence import SequenceModel


@dataclass
class Encoding:
    """The posterior of a batch: q(f | x_1:T), q(z | ...) and the latents used."""

    q_f: Independent
    q_z: Independent
    f: torch.Tensor  # (B, F)
    z: torch.Tensor  # (B, T, Z), or (B, Z) for a global z


P = ParamSpec("P")
R = TypeVar("R")


def inference(fn: Callable[P, R]) -> Callable[P, R]:
    """Run ``fn(model, ...)`` without gradients and with the model in eval mode.

    Eval mode makes BatchNorm use its running statistics, so one sequence's
    output never depends on the others in the batch (nor on missing frames);
    the model's previous mode is restored afterwards.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        model = args[0]
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return fn(*args, **kwargs)
        finally:
            model.train(was_training)

    return wrapper


def _draw(dist: Independent, sample: bool, generator: torch.Generator | None) -> torch.Tensor:
    return rsample(dist, generator) if sample else dist.mean


@inference
def encode(
    model: SequenceModel,
    x: torch.Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> Encoding:
    """Infer f ~ q(f | x_1:T) and z_1:T ~ q(z_1:T | ...) (means unless ``sample``)."""
    features = model.encode_features(x)
    q_f = model.posterior_f(features)
    f = _draw(q_f, sample, generator)
    q_z = model.posterior_z(features, f)
    return Encoding(q_f, q_z, f, _draw(q_z, sample, generator))


@inference
def decode(
    model: SequenceModel, z: torch.Tensor, f: torch.Tensor, length: int | None = None
) -> torch.Tensor:
    """Mean of p(x_t | z_t, f) for z (B, T, Z) and f (B, F): frames (B, T, *frame).

    A global z (B, Z) of the baselines needs the number of frames, ``length``.
    """
    return model.decode(z, f, length).mean


@inference
def reconstruct(
    model: SequenceModel,
    x: torch.Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Encode ``x`` and decode it again (Fig. 3 b); for the baselines, from f and global z."""
    enc = encode(model, x, sample=sample, generator=generator)
    return decode(model, enc.z, enc.f, x.shape[1])


@inference
def generate(
    model: DSVAE, n: int, length: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Unconditional generation: f ~ p(f), z_1:T ~ p(z_1:T), n sequences of ``length``."""
    _check_count(n, length)
    f = model.sample_f(n, generator)
    z = model.sample_z(n, length, generator)
    return decode(model, z, f)


@inference
def generate_fixed_f(
    model: DSVAE,
    k: int,
    length: int,
    *,
    f: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One content f (given (F,), or f ~ p(f)) with K dynamics z^k_1:T ~ p(z_1:T) (Fig. 3 g)."""
    _check_count(k, length)
    f = model.sample_f(1, generator)[0] if f is None else f
    z = model.sample_z(k, length, generator)
    return decode(model, z, f.expand(k, -1))


@inference
def generate_fixed_z(
    model: DSVAE,
    k: int,
    length: int | None = None,
    *,
    z: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One dynamics z_1:T (given (T, Z), or drawn from the prior) with K contents f^k ~ p(f) (Fig. 3 h)."""
    if z is None:
        if length is None:
            raise ArgumentError("generate_fixed_z needs either z or length")
        _check_count(k, length)
        z = model.sample_z(1, length, generator)[0]
    _check_count(k, z.shape[-2])
    f = model.sample_f(k, generator)
    return decode(model, z.expand(k, -1, -1), f)


@inference
def conditional_generate(
    model: DSVAE,
    x: torch.Tensor,
    keep: Literal["f", "z"],
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keep one factor of ``x`` and draw the other from the prior.

    ``keep="f"``: f from q(f | x_1:T), z_1:T ~ p(z_1:T) -- same content, new
    motion (Fig. 3 d). ``keep="z"``: z_1:T from the posterior, f ~ p(f) -- same
    motion, new content (Fig. 3 c); for full q the posterior of z is conditioned
    on the encoded f, as in training.
    """
    if keep not in ("f", "z"):
        raise ArgumentError(f"keep must be 'f' or 'z', got {keep!r}")
    enc = encode(model, x, sample=sample, generator=generator)
    b, t = x.shape[:2]
    if keep == "f":
        return decode(model, model.sample_z(b, t, generator), enc.f)
    return decode(model, enc.z, model.sample_f(b, generator))


@inference
def swap(
    model: SequenceModel,
    x_a: torch.Tensor,
    x_b: torch.Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature swap (Fig. 3 e, f): returns (f^a with z^b, f^b with z^a).

    Each sequence is encoded on its own, so for full q the dynamics z^b come
    from q(z | f^b, x^b) with f^b encoded too (footnote 1).
    """
    if x_a.shape != x_b.shape:
        raise DataError(
            f"swap needs two batches of the same shape, got {tuple(x_a.shape)} and {tuple(x_b.shape)}"
        )
    a = encode(model, x_a, sample=sample, generator=generator)
    b = encode(model, x_b, sample=sample, generator=generator)
    t = x_a.shape[1]
    return decode(model, b.z, a.f, t), decode(model, a.z, b.f, t)


def _check_count(n: int, length: int) -> None:
    if n < 1 or length < 1:
        raise ArgumentError(
            f"need at least one sequence of at least one frame, got n={n}, length={length}"
        )


def observed_mask(batch: int, length: int, observed: int, device=None) -> torch.Tensor:
    """Mask (B, T) that observes the first ``observed`` frames (prediction)."""
    if not 1 <= observed <= length:
        raise DataError(f"the number of observed frames must be in 1..{length}, got {observed}")
    mask = torch.zeros(batch, length, dtype=torch.bool, device=device)
    mask[:, :observed] = True
    return mask


@inference
def impute(
    model: SequenceModel,
    x: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    observed: int | None = None,
    sample: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill in missing frames with the prior dynamics (Section 4.3).

    For the deterministic baselines (LSTM-f, LSTM-c) f and the global z are
    inferred from the observed frames only and all T frames are decoded from them.

    ``mask`` (B, T) is True where a frame is observed; ``observed=t`` is the
    prediction case, observing frames 1..t. The conditioning is:

    * f from q(f | observed frames): the bi-LSTM reads only the observed frames;
    * for an observed step, z_t from the posterior (q(z_t | x_t), or for full q
      q(z | f, observed frames), whose networks read only the observed frames);
    * for a missing step, z_t from the prior p(z_t | z_<t), where z_<t mixes the
      posterior values of earlier observed steps and the values filled in before.

    Every frame, observed or not, is then decoded from (z_t, f). Missing frames'
    pixels are never read. Means are used unless ``sample=True``.
    """
    model.check_input(x)
    b, t = x.shape[:2]
    if (mask is None) == (observed is None):
        raise ArgumentError("impute needs exactly one of mask= or observed=")
    mask = observed_mask(b, t, observed, x.device) if mask is None else mask.to(x.device).bool()
    if mask.shape != (b, t):
        raise DataError(f"mask must have shape (B, T) = {(b, t)}, got {tuple(mask.shape)}")
    if not mask.any(dim=1).all():
        raise DataError(
            "the mask hides every frame of a sequence; observe at least one frame per sequence"
        )
    return model.impute(x, mask, sample, generator)
