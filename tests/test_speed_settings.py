"""Speed settings change how training runs, never what it computes."""

from __future__ import annotations

import pytest
import torch

from dsvae.config import load_config
from dsvae.data import make_bouncing_ball_dataset, prepare_frames
from dsvae.model import build_model
from dsvae.train import train
from tiny import TINY_MODEL, TINY_TRAIN

# every speed setting off: the reference the settings are compared with
TINY = [*TINY_MODEL, *TINY_TRAIN, "train.max_epochs=2"]
OFF = ["train.channels_last=false", "train.fused_adam=false"]


@pytest.fixture(scope="module")
def ball_dir(tmp_path_factory):
    return make_bouncing_ball_dataset(
        tmp_path_factory.mktemp("ball") / "d", n=40, length=6, size=16, seed=3
    )


@pytest.fixture(scope="module")
def reference(ball_dir, tmp_path_factory):
    """The model after 2 epochs with every speed setting off."""
    return train(
        load_config("quickstart", [*TINY, *OFF]), ball_dir, tmp_path_factory.mktemp("r") / "run"
    ).model


def _assert_same_model(model, reference, atol: float) -> None:
    """Same weights, and the same ELBO on a fixed batch.

    A conv bias that feeds a batch norm has an exactly zero gradient, so it only
    moves by Adam's normalised rounding noise (which other kernels change); the
    norm's running mean absorbs it and the outputs stay the same. Those biases and
    running means are compared through the ELBO instead of value by value. That
    noise differs between CPUs (a fused kernel vectorises differently with and
    without AVX-512), so the ELBO is held to 0.1%, not to float32 rounding.
    """
    state, ref = model.state_dict(), reference.state_dict()
    assert state.keys() == ref.keys()
    noisy = set()
    for norm in (k.removesuffix(".running_mean") for k in ref if k.endswith(".running_mean")):
        prefix, index = norm.rsplit(".", 1)  # the conv is the layer before its norm
        noisy |= {f"{norm}.running_mean", f"{prefix}.{int(index) - 1}.bias"}
    for key, value in ref.items():
        if key not in noisy:
            torch.testing.assert_close(state[key], value, atol=atol, rtol=0, msg=key)
    x = (torch.rand(4, 6, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    with torch.no_grad():
        a = model.eval()(x, generator=gen()).terms["elbo"]
        b = reference.eval()(x, generator=gen()).terms["elbo"]
    torch.testing.assert_close(a, b, rtol=1e-3, atol=0)


@pytest.mark.parametrize(
    ("setting", "atol"),
    [
        ("train.data_on_device=true", 0.0),  # the same batches in the same order
        ("train.fused_adam=true", 1e-5),
    ],
)
def test_setting_trains_the_same_model(ball_dir, reference, tmp_path, setting, atol):
    result = train(load_config("quickstart", [*TINY, *OFF, setting]), ball_dir, tmp_path / "run")
    _assert_same_model(result.model, reference, atol)


def test_channels_last_step_has_the_same_loss_and_gradients():
    """One training step in NHWC equals it in NCHW: the same loss and gradients."""
    torch.manual_seed(0)
    config = load_config("quickstart", [*TINY, "model.frame_shape=[1,16,16]"])
    plain = build_model(config.model)
    nhwc = build_model(config.model).to(memory_format=torch.channels_last)
    nhwc.load_state_dict(plain.state_dict())
    batch = torch.rand(4, 6, 16, 16, 1, generator=torch.Generator().manual_seed(0)) > 0.8
    batch = batch.to(torch.uint8) * 255
    losses = []
    for model, channels_last in ((plain, False), (nhwc, True)):
        out = model(
            prepare_frames(batch, channels_last), generator=torch.Generator().manual_seed(1)
        )
        loss = model.loss(out)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-6, atol=0)
    # float32 rounding differs between the kernels: compare on the scale of the gradients
    scale = max(p.grad.abs().max().item() for p in plain.parameters())
    for (name, a), b in zip(plain.named_parameters(), nhwc.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-5 * scale, msg=name)


def test_channels_last_run(ball_dir, reference, tmp_path):
    """A whole run in NHWC ends within 1% of the NCHW run's ELBO (rounding compounds)."""
    config = load_config("quickstart", [*TINY, *OFF, "train.channels_last=true"])
    model = train(config, ball_dir, tmp_path / "run").model
    assert next(model.encoder.conv.parameters()).is_contiguous(memory_format=torch.channels_last)
    x = (torch.rand(4, 6, 1, 16, 16, generator=torch.Generator().manual_seed(0)) > 0.8).float()
    with torch.no_grad():
        a = model.eval()(x, generator=torch.Generator().manual_seed(1)).terms["elbo"]
        b = reference.eval()(x, generator=torch.Generator().manual_seed(1)).terms["elbo"]
    assert abs(a - b) / abs(b) < 0.01


def test_channels_last_input_keeps_values_and_layout():
    batch = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8)  # (B, T, H, W, C)
    plain, nhwc = prepare_frames(batch), prepare_frames(batch, channels_last=True)
    assert torch.equal(plain, nhwc)
    assert nhwc.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    assert plain.is_contiguous()


def test_bf16_autocast_elbo_matches_float32():
    """Under bf16 autocast the ELBO's terms stay float32 and within 1% of the fp32 ELBO."""
    torch.manual_seed(0)
    config = load_config("quickstart", ["model.frame_shape=[1,32,32]"])
    model = build_model(config.model).eval()
    x = (torch.rand(8, 10, 1, 32, 32) > 0.9).float()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    with torch.no_grad():
        full = model(x, generator=gen()).terms
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(x, generator=gen()).terms
    for name in ("recon", "kl_f", "kl_z", "elbo"):
        assert half[name].dtype == torch.float32, name
    rel = abs(half["elbo"] - full["elbo"]) / abs(full["elbo"])
    assert rel < 0.01, f"bf16 ELBO {half['elbo']:.2f} vs fp32 {full['elbo']:.2f}"


def test_threads_setting(ball_dir, tmp_path):
    before = torch.get_num_threads()
    try:
        train(load_config("quickstart", [*TINY, *OFF, "train.threads=1"]), ball_dir, tmp_path / "r")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_torch_compile_trains_the_same_model(ball_dir, reference, tmp_path):
    result = train(
        load_config("quickstart", [*TINY, *OFF, "train.torch_compile=true"]),
        ball_dir,
        tmp_path / "run",
    )
    _assert_same_model(result.model, reference, 1e-4)


def test_automatic_settings_on_a_cpu(ball_dir, tmp_path):
    from dsvae.train.run import resolve_precision

    assert resolve_precision("auto", "cpu") == "32-true"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    config = load_config("quickstart", [*TINY_MODEL, *TINY_TRAIN, "train.max_epochs=1"])
    assert config.train.precision == "auto" and config.train.data_on_device is None
    result = train(config, ball_dir, tmp_path / "run")
    assert next(result.model.parameters()).dtype == torch.float32
    assert next(result.model.encoder.conv.parameters()).is_contiguous()  # NCHW on a CPU


def test_recurrent_layers_run_in_float32_under_cpu_autocast():
    from torch.nn.utils.rnn import pack_padded_sequence

    from dsvae.model.recurrent import LSTM, RNN

    torch.manual_seed(0)
    for layer, plain in (
        (LSTM(3, 5, batch_first=True), torch.nn.LSTM),
        (RNN(3, 5, batch_first=True), torch.nn.RNN),
    ):
        ref = plain(3, 5, batch_first=True)
        ref.load_state_dict(layer.state_dict())  # the same parameters and keys
        x = torch.randn(2, 4, 3)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = layer(x)
            packed, _ = layer(pack_padded_sequence(x, [4, 2], batch_first=True))
        assert out.dtype == torch.float32 and packed.data.dtype == torch.float32
        torch.testing.assert_close(out, ref(x)[0])
