"""Batch norm folded into the layer before it, for inference on a trained model.

In eval mode a BatchNorm is an affine map per channel with fixed coefficients,
``y = (x - mean) / sqrt(var + eps) * gamma + beta``, computed from its running statistics.
When it directly follows a convolution or a linear layer, that map can be merged into the
layer's weights and bias, so that one pass over the activations does the work of two: the
frame encoder's and decoder's conv -> BN -> activation blocks become conv -> activation.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

FOLDABLE: tuple[tuple[type[nn.Module], type[nn.Module]], ...] = (
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.ConvTranspose2d, nn.BatchNorm2d),
    (nn.Linear, nn.BatchNorm1d),
)
"""The (layer, norm) pairs that are folded when the norm directly follows the layer in an
``nn.Sequential``; a Linear's output is taken to be (N, C), the only shape its BatchNorm1d
normalises per output feature."""


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """A copy of ``model``, in eval mode, with every foldable batch norm merged into the
    layer before it and replaced by ``nn.Identity``; ``model`` itself is left as it was.

    The copy computes what ``model.eval()`` computes, to float32 rounding, and is for
    inference only. A batch norm in training mode normalises with the statistics of the
    batch it is given, which are not known in advance, so it cannot be folded: training
    the copy would train a different network. Norms without running statistics
    (``track_running_stats=False``) use batch statistics in eval mode too and are kept, as
    are norms that follow anything else. A model without batch norm comes back as an
    equal copy.
    """
    folded = copy.deepcopy(model).eval()
    for sequence in folded.modules():
        if isinstance(sequence, nn.Sequential):
            _fold_sequence(sequence)
    return folded


def _fold_sequence(sequence: nn.Sequential) -> None:
    names = list(sequence._modules)
    for before, after in zip(names[:-1], names[1:], strict=True):
        layer, norm = sequence._modules[before], sequence._modules[after]
        if _foldable(layer, norm):
            _merge(layer, norm)
            sequence._modules[after] = nn.Identity()


def _foldable(layer: nn.Module | None, norm: nn.Module | None) -> bool:
    pair = any(type(layer) is lt and type(norm) is nt for lt, nt in FOLDABLE)
    return pair and norm.track_running_stats and norm.running_mean is not None


@torch.no_grad()
def _merge(layer: nn.Module, norm: nn.BatchNorm1d | nn.BatchNorm2d) -> None:
    """Fold ``norm``'s affine map into ``layer``'s weight (scaled per output channel) and
    bias, computed in float64 and stored in the layer's dtype."""
    weight = layer.weight
    scale = (norm.running_var.double() + norm.eps).rsqrt()
    shift = -norm.running_mean.double() * scale
    if norm.affine:
        gamma = norm.weight.double()
        scale, shift = scale * gamma, shift * gamma + norm.bias.double()
    bias = layer.bias.double() if layer.bias is not None else torch.zeros_like(scale)
    layer.weight.copy_(_scale_outputs(layer, weight.double(), scale))
    new_bias = (bias * scale + shift).to(weight.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(new_bias, requires_grad=weight.requires_grad)
    else:
        layer.bias.copy_(new_bias)


def _scale_outputs(layer: nn.Module, weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``weight`` with each output channel's slice multiplied by its entry of ``scale``.

    Conv2d and Linear weights hold output channels in dim 0; a ConvTranspose2d's are
    (in, out / groups, kH, kW), with output channel ``g * out / groups + j`` in group ``g``.
    """
    if isinstance(layer, nn.ConvTranspose2d):
        groups = layer.groups
        per_group = weight.view(groups, weight.shape[0] // groups, *weight.shape[1:])
        by_group = scale.view(groups, 1, -1, *([1] * (weight.dim() - 2)))
        return (per_group * by_group).view_as(weight)
    return weight * scale.view(-1, *([1] * (weight.dim() - 1)))
