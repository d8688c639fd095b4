"""The learning rate: scaled with the batch, warmed up, cosine, kept across a resume."""

from __future__ import annotations

import csv
import json
import math

import lightning.pytorch as pl
import pytest
import torch

from dsvae.config import TrainConfig, load_config
from dsvae.errors import ConfigError
from dsvae.train import train
from dsvae.train.schedule import DECAYS, build_scheduler, lr_factor, peak_lr
from tiny import train_config

LR = 0.003  # TINY_TRAIN's
STEPS = 15  # 3 epochs of 5 steps: 76 training sequences in batches of 16


def lr_column(run) -> dict[int, float]:
    with open(run / "metrics.csv", newline="") as fh:
        return {int(r["step"]): float(r["train/lr"]) for r in csv.DictReader(fh) if r["train/lr"]}


class StopAfterFirstEpoch(pl.Callback):
    """Ends fitting after epoch 0 (its checkpoint is written), as a stopped run would."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


class Optimisation(pl.Callback):
    """Records the optimiser's rate and the schedulers when fitting starts."""

    def on_train_start(self, trainer, pl_module):
        self.lr = trainer.optimizers[0].param_groups[0]["lr"]
        self.schedulers = list(trainer.lr_scheduler_configs)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr_warmup_steps=-1", "train.lr_warmup_steps must be >= 0, got -1"),
        ("train.lr_min_factor=1.5", r"train.lr_min_factor must be in \[0, 1\], got 1.5"),
        ("train.lr_min_factor=-0.1", r"train.lr_min_factor must be in \[0, 1\], got -0.1"),
        ("train.lr_reference_batch=0", "train.lr_reference_batch must be > 0, got 0"),
        ("train.lr_reference_batch=-32", "train.lr_reference_batch must be > 0, got -32"),
        ("train.lr_schedule=linear", r"train.lr_schedule must be one of \['constant', 'cosine'\]"),
        ("train.lr_scaling=cube", r"train.lr_scaling must be one of \['sqrt', 'linear'\]"),
    ],
)
def test_invalid_schedules_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_the_rate_is_scaled_with_the_global_batch():
    assert peak_lr(TrainConfig(lr=1e-3, batch_size=128)) == 1e-3  # no reference: as given
    sqrt = TrainConfig(lr=1e-3, batch_size=128, lr_reference_batch=32)
    assert peak_lr(sqrt) == pytest.approx(2e-3)  # sqrt(128 / 32)
    assert peak_lr(sqrt, world_size=2) == pytest.approx(1e-3 * math.sqrt(8))
    linear = TrainConfig(lr=1e-3, batch_size=128, lr_reference_batch=32, lr_scaling="linear")
    assert peak_lr(linear) == pytest.approx(4e-3)
    assert peak_lr(linear, world_size=2) == pytest.approx(8e-3)
    smaller = TrainConfig(lr=1e-3, batch_size=8, lr_reference_batch=32, lr_scaling="linear")
    assert peak_lr(smaller) == pytest.approx(2.5e-4)


def test_warm_up_endpoints_and_the_cosine_end():
    cfg = TrainConfig(lr_schedule="cosine", lr_warmup_steps=4, lr_min_factor=0.1)
    factors = [lr_factor(s, cfg, 100) for s in range(100)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]  # from 1/N of the peak to the peak
    assert factors[99] == pytest.approx(0.1)  # the last step: lr_min_factor
    assert factors[3 + 48] == pytest.approx(0.55)  # half way through the decay: the mean
    assert all(a > b for a, b in zip(factors[3:], factors[4:], strict=False))
    assert lr_factor(150, cfg, 100) == pytest.approx(0.1)  # past the end: stays at the floor
    # without a warm-up the cosine starts at the peak; constant stays there after the warm-up
    plain = TrainConfig(lr_schedule="cosine", lr_min_factor=0.0)
    assert lr_factor(0, plain, 11) == 1.0 and lr_factor(10, plain, 11) == pytest.approx(0.0)
    assert lr_factor(5, plain, 11) == pytest.approx(0.5)
    warm = TrainConfig(lr_warmup_steps=2)
    assert [lr_factor(s, warm, 10) for s in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]
    assert tuple(DECAYS) == ("constant", "cosine")


def test_the_scheduler_gives_each_step_its_factor_and_restores_its_place():
    cfg = TrainConfig(lr=0.01, lr_schedule="cosine", lr_warmup_steps=3, lr_min_factor=0.2)
    param = torch.nn.Parameter(torch.zeros(1))

    def scheduled():
        optimizer = torch.optim.Adam([param], lr=0.01)
        return optimizer, build_scheduler(optimizer, cfg, 20)

    optimizer, scheduler = scheduled()
    used = []
    for _ in range(20):
        used.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        if len(used) == 7:
            saved = scheduler.state_dict(), optimizer.state_dict()
    assert used == pytest.approx([0.01 * lr_factor(s, cfg, 20) for s in range(20)])
    assert used[-1] == pytest.approx(0.002)
    optimizer, scheduler = scheduled()
    scheduler.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(used[7])
    assert saved[0]["lr_lambdas"] == [None]  # the closure is rebuilt, not restored


def test_a_run_follows_its_schedule_and_a_resume_continues_it(ball80_dir, tmp_path):
    schedule = (
        "train.max_epochs=3",
        "train.max_time_minutes=null",  # the quickstart's time cap would warn
        "train.lr_schedule=cosine",
        "train.lr_warmup_steps=3",
        "train.lr_min_factor=0.1",
        "train.log_every_n_steps=1",
    )
    straight = train(train_config(*schedule), ball80_dir, tmp_path / "a")
    lrs = lr_column(tmp_path / "a")
    assert sorted(lrs) == list(range(STEPS))
    assert lrs[0] == pytest.approx(LR / 3) and lrs[2] == pytest.approx(LR)
    assert lrs[STEPS - 1] == pytest.approx(0.1 * LR)
    cfg = train_config(*schedule).train
    assert [lrs[s] for s in range(STEPS)] == pytest.approx(
        [LR * lr_factor(s, cfg, STEPS) for s in range(STEPS)]
    )
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["peak_lr"] == LR

    train(train_config(*schedule), ball80_dir, tmp_path / "b", callbacks=[StopAfterFirstEpoch()])
    assert sorted(lr_column(tmp_path / "b")) == list(range(5))
    resumed = train(train_config(*schedule), ball80_dir, tmp_path / "b", resume=True)
    assert resumed.global_step == STEPS
    assert lr_column(tmp_path / "b") == pytest.approx(lrs)  # the same rate at every step
    for name, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


def test_a_constant_rate_has_no_scheduler_and_a_scaled_one_is_logged(ball80_dir, tmp_path):
    plain = Optimisation()
    train(train_config("train.max_steps=2"), ball80_dir, tmp_path / "plain", callbacks=[plain])
    assert plain.schedulers == [] and plain.lr == LR
    with open(tmp_path / "plain" / "metrics.csv", newline="") as fh:
        assert "train/lr" not in next(csv.reader(fh))
    scaled = Optimisation()
    run = tmp_path / "scaled"
    config = train_config(
        "train.max_steps=2", "train.lr_reference_batch=4", "train.log_every_n_steps=1"
    )
    train(config, ball80_dir, run, callbacks=[scaled])
    assert scaled.schedulers == [] and scaled.lr == pytest.approx(2 * LR)  # sqrt(16 / 4)
    assert lr_column(run) == pytest.approx({0: 2 * LR, 1: 2 * LR})
    assert json.loads((run / "summary.json").read_text())["peak_lr"] == pytest.approx(2 * LR)


def test_a_decay_under_a_time_cap_without_a_step_count_is_warned(ball80_dir, tmp_path):
    config = train_config(
        "train.max_epochs=1", "train.lr_schedule=cosine", "train.max_time_minutes=60"
    )
    with pytest.warns(UserWarning, match=r"decays over 5 steps .* set train\.max_steps"):
        train(config, ball80_dir, tmp_path / "capped")
