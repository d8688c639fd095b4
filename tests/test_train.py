"""Training through Lightning: run folders, exact resume, the loss going down."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
import torch
import yaml

from dsvae.config import load_config
from dsvae.data import SequenceDataset, make_bouncing_ball_dataset, prepare_frames
from dsvae.errors import ConfigError, DsvaeError
from dsvae.model import load_model
from dsvae.train import EpochSeededSampler, train
from dsvae.train.checkpoints import AtomicCheckpointIO
from dsvae.train.run import resume_checkpoint
from tiny import TINY_MODEL, TINY_TRAIN

TINY = [*TINY_MODEL, *TINY_TRAIN]


@pytest.fixture(scope="module")
def ball_dir(tmp_path_factory):
    return make_bouncing_ball_dataset(
        tmp_path_factory.mktemp("ball") / "d", n=80, length=6, size=16, seed=3
    )


def tiny_config(*extra: str):
    return load_config("configs/quickstart.yaml", [*TINY, *extra])


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_run_folder_layout(ball_dir, tmp_path):
    result = train(tiny_config("train.max_epochs=2"), ball_dir, tmp_path / "run")
    run = tmp_path / "run"
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["frame_shape"] == [1, 16, 16]  # filled in from the data
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in (run / "model").iterdir()) == ["config.json", "model.safetensors"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == result.global_step == 2 * 5  # 76 training sequences / 16
    assert summary["sequence_length"] == 6
    rows = _rows(run / "metrics.csv")
    assert {"step", "epoch", "train/elbo", "val/elbo"} <= set(rows[0])
    assert sum(1 for r in rows if r["val/elbo"]) == 2  # one validation row per epoch
    assert not list(run.rglob("*.tmp"))
    # the saved model is the trained one
    x = prepare_frames(torch.stack([SequenceDataset(ball_dir)[i] for i in range(4)]))
    loaded = load_model(run)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(
        loaded(x, generator=gen()).terms["elbo"], result.model(x, generator=gen()).terms["elbo"]
    )


def test_training_lowers_the_loss(ball_dir, tmp_path):
    """A short run on the bouncing ball raises the held-out ELBO by over 40%."""
    x = prepare_frames(torch.stack([SequenceDataset(ball_dir)[i] for i in range(16)]))
    config = tiny_config("train.max_epochs=6")
    torch.manual_seed(config.train.seed)
    from dsvae.model import DSVAE

    config.model.frame_shape = [1, 16, 16]
    untrained = DSVAE(config.model).eval()
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    before = untrained(x, generator=gen()).terms["elbo"].item()
    result = train(config, ball_dir, tmp_path / "run")
    after = result.model(x, generator=gen()).terms["elbo"].item()
    assert after > before * 0.6, (before, after)  # ELBOs are negative: |after| < 0.6 |before|


def test_resume_continues_exactly(ball_dir, tmp_path):
    straight = train(tiny_config("train.max_epochs=3"), ball_dir, tmp_path / "a")
    train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "b")
    resumed = train(tiny_config("train.max_epochs=3"), ball_dir, tmp_path / "b", resume=True)
    assert resumed.global_step == straight.global_step == 15
    for name, value in _weights(straight.model).items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    steps = [int(r["step"]) for r in _rows(tmp_path / "b" / "metrics.csv")]
    assert steps == sorted(steps) and max(steps) == 14


def test_the_summary_of_a_resumed_run_covers_the_whole_run(ball_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config("train.max_epochs=2"), ball_dir, run)
    first = json.loads((run / "summary.json").read_text())
    # two steps into epoch 3: this process runs no validation of its own
    train(tiny_config("train.max_epochs=9", "train.max_steps=12"), ball_dir, run, resume=True)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["global_step"] == 12 and summary["resumed"]
    last_val = [float(r["val/elbo"]) for r in _rows(run / "metrics.csv") if r["val/elbo"]][-1]
    assert summary["metrics"]["val/elbo"] == pytest.approx(last_val)
    assert summary["metrics"]["val/elbo"] == pytest.approx(first["metrics"]["val/elbo"])
    assert "train/elbo" in summary["metrics"]
    # training time counts across the resume; wall time is this call's alone
    assert summary["train_time_s"] >= first["train_time_s"] + 0.5 * summary["wall_time_s"]
    assert first["train_time_s"] <= first["wall_time_s"] + 1.0


def test_max_time_minutes_stops_the_run(ball_dir, tmp_path):
    run = tmp_path / "run"
    result = train(
        tiny_config("train.max_epochs=50", "train.max_time_minutes=0.0001"), ball_dir, run
    )
    assert 1 <= result.global_step < 10  # stopped in the first epoch, after its first step
    assert json.loads((run / "summary.json").read_text())["train_time_s"] > 0.006


def test_resume_in_a_copied_run_folder_overwrites_last_checkpoint(ball_dir, tmp_path):
    """Continuing a copy of a run (to try another setting) keeps last.ckpt current."""
    train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    resumed = train(tiny_config("train.max_epochs=2"), ball_dir, tmp_path / "b", resume=True)
    folder = tmp_path / "b" / "checkpoints"
    assert resumed.global_step == 10
    assert not list(folder.glob("last-v*.ckpt"))
    assert torch.load(folder / "last.ckpt", weights_only=True, mmap=True)["global_step"] == 10
    assert resume_checkpoint(tmp_path / "b") == folder / "last.ckpt"


def test_resume_takes_a_newer_versioned_last_checkpoint(ball_dir, tmp_path):
    """Folders copied under older versions hold the newest state in last-v1.ckpt."""
    train(tiny_config("train.max_epochs=2"), ball_dir, tmp_path / "a")
    folder = tmp_path / "a" / "checkpoints"
    for old in folder.glob("epoch*.ckpt"):
        old.unlink()
    shutil.copy(folder / "last.ckpt", folder / "last-v1.ckpt")
    train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "old")
    shutil.copy(tmp_path / "old" / "checkpoints" / "last.ckpt", folder / "last.ckpt")
    assert resume_checkpoint(tmp_path / "a") == folder / "last-v1.ckpt"


def test_resume_checks(ball_dir, tmp_path):
    with pytest.raises(DsvaeError, match="no checkpoints/last.ckpt"):
        train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "none", resume=True)
    train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "run")
    with pytest.raises(DsvaeError, match="already exists"):
        train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "run")
    with pytest.raises(ConfigError, match="model config differs"):
        train(
            tiny_config("model.z_dim=5", "train.max_epochs=2"),
            ball_dir,
            tmp_path / "run",
            resume=True,
        )


def test_frame_shape_mismatch(ball_dir, tmp_path):
    with pytest.raises(ConfigError, match="frame_shape"):
        train(tiny_config("model.frame_shape=[1,32,32]"), ball_dir, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_epoch_seeded_sampler_depends_only_on_seed_and_epoch():
    a, b = EpochSeededSampler(50, seed=1), EpochSeededSampler(50, seed=1)
    b.set_epoch(3)
    b.set_epoch(0)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == list(range(50))


def test_checkpoints_load_without_unpickling_code(tmp_path):
    """A checkpoint that would run code when unpickled is refused."""
    sentinel = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(sentinel), "w"))

    torch.save({"state_dict": {}, "evil": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(DsvaeError, match="cannot be loaded safely"):
        AtomicCheckpointIO().load_checkpoint(tmp_path / "evil.ckpt")
    assert not sentinel.exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "c.ckpt"
    io.save_checkpoint({"step": torch.tensor(1)}, path)

    def crash(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        io.save_checkpoint({"step": torch.tensor(2)}, path)
    monkeypatch.undo()
    assert io.load_checkpoint(path)["step"].item() == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_pictures_while_training(ball_dir, tmp_path):
    result = train(
        tiny_config("train.max_epochs=2", "train.pictures_every_n_epochs=2"),
        ball_dir,
        tmp_path / "run",
    )
    folders = sorted(p.name for p in (result.run_dir / "pictures").iterdir())
    assert folders == ["epoch0001"]  # only after the second epoch
    names = {p.name for p in (result.run_dir / "pictures" / "epoch0001").iterdir()}
    assert names == {"reconstruction.png", "reconstruction.gif", "generation.png", "generation.gif"}


def test_export_from_a_checkpoint(ball_dir, tmp_path):
    from dsvae.train.run import export_checkpoint

    result = train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "run")
    x = prepare_frames(torch.stack([SequenceDataset(ball_dir)[i] for i in range(3)]))
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    expected = result.model(x, generator=gen()).terms["elbo"]
    import shutil

    shutil.rmtree(tmp_path / "run" / "model")
    export_checkpoint(tmp_path / "run")
    torch.testing.assert_close(
        load_model(tmp_path / "run")(x, generator=gen()).terms["elbo"], expected
    )
    with pytest.raises(DsvaeError, match="not a run folder"):
        export_checkpoint(tmp_path)


def test_a_failing_picture_does_not_end_training(ball_dir, tmp_path, monkeypatch):
    import dsvae.showcase

    def broken(*args, **kwargs):
        raise RuntimeError("no pictures today")

    monkeypatch.setattr(dsvae.showcase, "write_reconstructions", broken)
    config = tiny_config("train.max_epochs=2", "train.pictures_every_n_epochs=1")
    with pytest.warns(UserWarning, match="no pictures today"):
        result = train(config, ball_dir, tmp_path / "run")
    assert result.global_step == 10


def test_mi_weight_adds_the_penalty_and_logs_it(ball_dir, tmp_path):
    """train.mi_weight > 0: the loss is -ELBO + weight * max(I, 0), logged per step."""
    train(tiny_config("train.max_epochs=1", "train.mi_weight=3.0"), ball_dir, tmp_path / "mi")
    rows = _rows(tmp_path / "mi" / "metrics.csv")
    steps = [r for r in rows if r["train/loss"]]
    assert steps and all(r["val/mi"] == "" for r in steps)
    for r in steps:
        mi = float(r["train/mi"])
        expected = -float(r["train/elbo"]) + 3.0 * max(mi, 0.0)
        assert float(r["train/loss"]) == pytest.approx(expected, rel=1e-5, abs=1e-3)
    val = [r for r in rows if r["val/elbo"]]
    assert len(val) == 1 and -0.5 < float(val[0]["val/mi"]) < math.log(16) + 1e-3
    # without the penalty there is no MI column, as before
    train(tiny_config("train.max_epochs=1"), ball_dir, tmp_path / "plain")
    assert "train/mi" not in _rows(tmp_path / "plain" / "metrics.csv")[0]
