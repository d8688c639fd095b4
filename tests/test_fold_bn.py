"""Batch norm folded into the layer before it: the same outputs, without the norms."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dsvae import ops
from dsvae.config import load_config
from dsvae.model import build_model
from dsvae.model.fold import fold_batch_norm

SHAPES = {"quickstart": [1, 32, 32], "sprites-cpu": [3, 64, 64], "sprites": [3, 64, 64]}


def randomise_norms(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters far from a fresh norm's (0, 1, 1, 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 2 + 0.2)
                if m.affine:
                    m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                    m.bias.copy_(torch.randn(n, generator=gen) * 0.3)


def count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


@pytest.mark.parametrize("name", ["quickstart", "sprites-cpu", "sprites"])
def test_a_folded_model_encodes_and_decodes_as_the_model_does(name):
    config = load_config(name, [f"model.frame_shape={SHAPES[name]}".replace(" ", "")])
    torch.manual_seed(0)
    model = build_model(config.model)
    randomise_norms(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded = fold_batch_norm(model)

    layers = len(config.model.frames.channels)  # a norm after each conv but the decoder's last
    assert count(model, nn.BatchNorm2d) == 2 * layers - 1 and count(folded, nn.BatchNorm2d) == 0
    assert count(folded, nn.Identity) == count(model, nn.Identity) + 2 * layers - 1
    assert model.training and not folded.training  # the model is left as it was
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    batch = 1 if name == "sprites" else 2
    x = torch.rand(batch, 2, *SHAPES[name], generator=torch.Generator().manual_seed(1))
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # noqa: E731
    ours, theirs = ops.encode(folded, x), ops.encode(model, x)
    close(ours.f, theirs.f)
    close(ours.z, theirs.z)
    # ops.reconstruct: the decoded posterior means
    close(ops.decode(folded, ours.z, ours.f), ops.decode(model, theirs.z, theirs.f))
    z, f = torch.randn_like(theirs.z), torch.randn_like(theirs.f)
    close(ops.decode(folded, z, f), ops.decode(model, z, f))


def test_every_foldable_pair_is_folded_and_the_rest_kept():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4, affine=False),
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2),
        nn.BatchNorm2d(6),
        nn.BatchNorm2d(6),  # follows a norm, not a layer: kept
        nn.Conv2d(6, 2, 1),
        nn.BatchNorm2d(2, track_running_stats=False),  # batch statistics even in eval: kept
        nn.Flatten(),
        nn.Linear(2 * 8 * 8, 5),
        nn.BatchNorm1d(5),
    )
    randomise_norms(net)
    folded = fold_batch_norm(net)
    kinds = [type(m).__name__ for m in folded]
    assert kinds == [
        "Conv2d", "Identity", "LeakyReLU", "ConvTranspose2d", "Identity", "BatchNorm2d",
        "Conv2d", "BatchNorm2d", "Flatten", "Linear", "Identity",
    ]  # fmt: skip
    assert folded[0].bias is not None and net[0].bias is None  # a bias is made where needed
    x = torch.randn(3, 3, 4, 4)
    net.eval()
    torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)


def test_a_model_without_batch_norm_comes_back_equal():
    config = load_config("quickstart", ["model.frame_shape=[1,32,32]", "model.frames.norm=group"])
    torch.manual_seed(0)
    model = build_model(config.model).eval()
    folded = fold_batch_norm(model)
    assert folded is not model
    assert [type(m) for m in folded.modules()] == [type(m) for m in model.modules()]
    state, original = folded.state_dict(), model.state_dict()
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)
    x = torch.rand(2, 3, 1, 32, 32)
    assert torch.equal(ops.reconstruct(folded, x), ops.reconstruct(model, x))
