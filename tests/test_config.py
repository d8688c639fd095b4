"""Tests of dsvae.config and dsvae.config_files: defaults, YAML and overrides, and every error message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from dsvae.config import (
    ExperimentConfig,
    FrameNetConfig,
    LikelihoodConfig,
    ModelConfig,
    TrainConfig,
    load_config,
)
from dsvae.config_files import (
    apply_overrides,
    dump_yaml,
    from_dict,
    parse_override,
    read_yaml,
    to_dict,
)
from dsvae.errors import ConfigError, DsvaeError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# ---------------------------------------------------------------- defaults


def test_defaults() -> None:
    cfg = load_config()
    assert cfg == ExperimentConfig()
    assert (cfg.model.f_dim, cfg.model.z_dim, cfg.model.hidden_dim) == (256, 32, 512)
    assert cfg.model.posterior == "factorised" and cfg.model.frame_shape is None
    assert cfg.model.frames.kind == "conv" and cfg.model.frames.downsample == 8
    assert cfg.model.likelihood.kind == "bernoulli"
    assert cfg.train.lr == 2e-4 and cfg.train.max_time_minutes is None


def test_config_errors_are_user_facing_value_errors() -> None:
    assert issubclass(ConfigError, DsvaeError) and issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------- from_dict


def test_from_dict_builds_nested_configs() -> None:
    cfg = from_dict(
        ExperimentConfig,
        {
            "model": {
                "z_dim": 8,
                "posterior": "full",
                "frame_shape": [3, 32, 32],
                "frames": {"channels": [8, 8], "strides": [2, 2], "kernel": 3},
                "likelihood": {"kind": "gaussian", "scale": "learned", "scale_value": 1},
            },
            "train": {"lr": 1, "devices": "auto", "grad_clip": 0.5},
        },
    )
    assert cfg.model.z_dim == 8 and cfg.model.posterior == "full"
    assert cfg.model.frames == FrameNetConfig(channels=[8, 8], strides=[2, 2], kernel=3)
    assert cfg.model.likelihood.scale == "learned"
    assert cfg.model.likelihood.scale_value == 1.0
    assert isinstance(cfg.model.likelihood.scale_value, float)  # ints are widened to floats
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.devices == "auto" and cfg.train.grad_clip == 0.5
    assert cfg.model.f_dim == 256  # untouched keys keep their defaults


def _refusal(data) -> str:
    """The message of the ConfigError that ``data`` as an experiment config raises."""
    with pytest.raises(ConfigError) as info:
        from_dict(ExperimentConfig, data)
    return str(info.value)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"modle": {}}, "unknown key modle in the config; valid keys: ['model', 'train']"),
        ({"model": {"zdim": 3}}, "unknown key model.zdim in model; valid keys: ["),
        ({"model": {"frames": {"chanels": [4]}}}, "unknown key model.frames.chanels"),
        ({"train": {"learning_rate": 1.0}}, "unknown key train.learning_rate"),
    ],
)
def test_unknown_keys_name_the_dotted_key_and_the_valid_ones(data, fragment) -> None:
    assert fragment in _refusal(data)


def test_unknown_key_lists_every_valid_key() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(ExperimentConfig, {"model": {"zdim": 3}})
    message = str(info.value)
    for key in ("f_dim", "z_dim", "hidden_dim", "posterior", "frame_shape", "frames", "likelihood"):
        assert repr(key) in message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"model": {"z_dim": "big"}}, "model.z_dim must be of type int, got 'big'"),
        ({"model": {"z_dim": True}}, "model.z_dim must be of type int, got True"),
        ({"model": {"z_dim": 3.0}}, "model.z_dim must be of type int, got 3.0"),
        ({"train": {"lr": "fast"}}, "train.lr must be of type float, got 'fast'"),
        ({"train": {"lr": False}}, "train.lr must be of type float, got False"),
        ({"train": {"progress_bar": 1}}, "train.progress_bar must be of type bool, got 1"),
        ({"train": {"accelerator": 3}}, "train.accelerator must be of type str, got 3"),
        ({"train": {"grad_clip": "x"}}, "train.grad_clip must be of type float, got 'x'"),
        ({"train": {"devices": [0, 1]}}, "train.devices has an invalid value [0, 1]"),
        ({"model": {"frames": {"channels": 8}}}, "model.frames.channels must be a list, got 8"),
        (
            {"model": {"frames": {"channels": [8, "a"]}}},
            "model.frames.channels[1] must be of type int, got 'a'",
        ),
        ({"model": 3}, "model must be a mapping of keys to values, got int"),
        ([1, 2], "the config must be a mapping of keys to values, got list"),
    ],
)
def test_wrong_types(data, fragment) -> None:
    assert fragment in _refusal(data)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"model": {"posterior": "partial"}},
            "model.posterior must be one of ['factorised', 'full'], got 'partial'",
        ),
        (
            {"model": {"frames": {"kind": "rnn"}}},
            "model.frames.kind must be one of ['conv', 'mlp'], got 'rnn'",
        ),
        (
            {"model": {"likelihood": {"kind": "poisson"}}},
            "model.likelihood.kind must be one of ['bernoulli', 'gaussian'], got 'poisson'",
        ),
        (
            {"model": {"likelihood": {"scale": "free"}}},
            "model.likelihood.scale must be one of ['fixed', 'learned'], got 'free'",
        ),
        (
            {"model": {"frames": {"strides": [1, 2, 3, 2]}}},
            "model.frames.strides[i] must be one of",
        ),
    ],
)
def test_invalid_choices_list_the_valid_ones(data, fragment) -> None:
    assert fragment in _refusal(data)


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (lambda: ModelConfig(z_dim=0), "model.z_dim must be > 0, got 0"),
        (lambda: ModelConfig(f_dim=-1), "model.f_dim must be > 0"),
        (lambda: FrameNetConfig(channels=[]), "at least one layer width"),
        (lambda: FrameNetConfig(channels=[4, 4], strides=[2]), "2 channels but 1 strides"),
        (lambda: FrameNetConfig(kernel=4), "model.frames.kernel must be odd and in 1..31, got 4"),
        (lambda: FrameNetConfig(channels=[4, 0, 4, 4]), "model.frames.channels[i] must be > 0"),
        (lambda: FrameNetConfig(hidden=[8, 0]), "model.frames.hidden[i] must be > 0"),
        (lambda: FrameNetConfig(feature_dim=0), "model.frames.feature_dim must be > 0"),
        (lambda: LikelihoodConfig(scale_value=0.0), "model.likelihood.scale_value must be > 0"),
        (lambda: TrainConfig(batch_size=0), "train.batch_size must be > 0"),
        (lambda: TrainConfig(max_steps=0), "train.max_steps must be -1 (no limit) or > 0, got 0"),
        (lambda: TrainConfig(max_steps=-2), "train.max_steps must be -1"),
        (lambda: TrainConfig(val_fraction=1.0), "train.val_fraction must be in [0, 1), got 1.0"),
        (lambda: TrainConfig(beta_z=-0.1), "train.beta_z must be >= 0, got -0.1"),
        (lambda: TrainConfig(max_time_minutes=0.0), "train.max_time_minutes must be > 0"),
        (lambda: TrainConfig(grad_clip=-1.0), "train.grad_clip must be > 0"),
    ],
)
def test_out_of_range_values(build, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert fragment in str(info.value)


def test_zero_is_allowed_where_it_means_off() -> None:
    cfg = TrainConfig(beta_f=0.0, beta_z=0.0, kl_warmup_steps=0, num_workers=0, val_fraction=0.0)
    assert (cfg.beta_f, cfg.val_fraction) == (0.0, 0.0)
    assert TrainConfig(max_steps=-1).max_steps == -1


# ---------------------------------------------------------------- overrides


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("model.z_dim=16") == (["model", "z_dim"], 16)
    assert parse_override("train.lr=0.5") == (["train", "lr"], 0.5)
    assert parse_override("model.frames.channels=[8, 8]") == (
        ["model", "frames", "channels"],
        [8, 8],
    )
    assert parse_override("model.posterior=full") == (["model", "posterior"], "full")
    assert parse_override("train.max_time_minutes=null") == (["train", "max_time_minutes"], None)
    assert parse_override("train.progress_bar=false") == (["train", "progress_bar"], False)
    assert parse_override("train.grad_clip=") == (["train", "grad_clip"], None)
    assert parse_override(" model.z_dim =a=b") == (["model", "z_dim"], "a=b")  # first = splits


def test_apply_overrides_sets_nested_keys_and_copies() -> None:
    data = {"model": {"frames": {"channels": [4, 4, 4, 4]}}, "train": {"max_time_minutes": 5.0}}
    out = apply_overrides(
        data,
        [
            "model.frames.channels=[8,8]",
            "model.frames.strides=[2, 2]",
            "train.max_time_minutes=null",
            "model.likelihood.kind=gaussian",  # a section that was not there yet
        ],
    )
    assert out == {
        "model": {
            "frames": {"channels": [8, 8], "strides": [2, 2]},
            "likelihood": {"kind": "gaussian"},
        },
        "train": {"max_time_minutes": None},
    }
    assert data == {
        "model": {"frames": {"channels": [4, 4, 4, 4]}},
        "train": {"max_time_minutes": 5.0},
    }


def test_load_config_applies_overrides_after_the_file(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("model:\n  z_dim: 7\n  posterior: full\ntrain:\n  max_time_minutes: 3\n")
    cfg = load_config(
        path,
        [
            "model.frames.channels=[8,8]",
            "model.frames.strides=[1,2]",
            "train.max_time_minutes=null",
        ],
    )
    assert cfg.model.z_dim == 7 and cfg.model.posterior == "full"
    assert cfg.model.frames.channels == [8, 8] and cfg.model.frames.downsample == 2
    assert cfg.train.max_time_minutes is None
    assert load_config(path).train.max_time_minutes == 3.0


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("nokey", "override 'nokey' must look like key=value, e.g. model.z_dim=16"),
        ("=3", "override '=3' has an empty key"),
        ("...=3", "has an empty key"),
        ("model.z_dim=[1, 2", "override 'model.z_dim=[1, 2': the value is not valid YAML"),
    ],
)
def test_malformed_overrides(override, fragment) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert fragment in str(info.value)


def test_exponent_floats_without_a_dot() -> None:
    """PyYAML reads 1e-3 (no dot) as a string; the config still takes it as a float."""
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 1e-3
    with pytest.raises(ConfigError, match="train.lr must be of type float"):
        load_config(None, ["train.lr=nan"])


def test_override_through_a_value_that_is_not_a_section() -> None:
    with pytest.raises(ConfigError, match="model is not a section"):
        apply_overrides({"model": 3}, ["model.z_dim=3"])


def test_overrides_are_validated_like_the_file() -> None:
    with pytest.raises(ConfigError, match="model.z_dim must be of type int, got 'big'"):
        load_config(None, ["model.z_dim=big"])
    with pytest.raises(ConfigError, match="unknown key train.epochs"):
        load_config(None, ["train.epochs=3"])


# ---------------------------------------------------------------- YAML files


def test_read_yaml_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist; see configs/"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        read_yaml(tmp_path)  # a folder is not a config file
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        read_yaml(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping with model: and train: sections"):
        read_yaml(listing)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert read_yaml(empty) == {}
    assert load_config(empty) == ExperimentConfig()


def test_dump_yaml_round_trip() -> None:
    cfg = load_config(
        None,
        [
            "model.posterior=full",
            "model.frame_shape=[3, 64, 64]",
            "model.frames.channels=[8, 8, 8]",
            "model.frames.strides=[2, 1, 2]",
            "model.likelihood.kind=gaussian",
            "model.likelihood.scale=learned",
            "train.lr=0.001",
            "train.grad_clip=1.5",
            "train.devices=auto",
            "train.max_time_minutes=2.5",
        ],
    )
    text = dump_yaml(cfg)
    data = yaml.safe_load(text)
    assert data == to_dict(cfg)
    assert from_dict(ExperimentConfig, data) == cfg
    assert list(data) == ["model", "train"]  # sections in declaration order
    # a model config alone round-trips as well (the saved-model form)
    assert from_dict(ModelConfig, yaml.safe_load(dump_yaml(cfg.model)), "model.") == cfg.model


def test_shipped_configs_load() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    for path in paths:
        cfg = load_config(path)
        assert isinstance(cfg, ExperimentConfig), path
        assert from_dict(ExperimentConfig, yaml.safe_load(dump_yaml(cfg))) == cfg, path


# ---------------------------------------------------------------- frame shapes


def _conv(channels=(4, 4, 4, 4), strides=(1, 2, 2, 2)) -> FrameNetConfig:
    return FrameNetConfig(kind="conv", channels=list(channels), strides=list(strides))


@pytest.mark.parametrize(
    ("frames", "shape", "fragment"),
    [
        (_conv(), [20], "a conv frame network needs image frames (C, H, W) with C in [1, 3]"),
        (_conv(), [2, 32, 32], "got frame shape (2, 32, 32); use model.frames.kind=mlp"),
        (_conv(), [1, 20, 20], "divisible by 8 (the conv encoder downsamples by 8)"),
        (_conv(), [1, 20, 20], "got 20x20"),
        (_conv(), [1, 32, 64], "got 32x64"),
        (_conv([4, 4], [2, 2]), [1, 18, 18], "divisible by 4"),
        (FrameNetConfig(kind="mlp"), [1, 32, 32], "an mlp frame network needs vector frames (D,)"),
    ],
)
def test_validate_frame_shape_errors(frames, shape, fragment) -> None:
    cfg = ModelConfig(frames=frames)
    with pytest.raises(ConfigError) as info:
        cfg.validate_frame_shape(shape)
    assert fragment in str(info.value)
    with pytest.raises(ConfigError):  # and the same check on construction
        ModelConfig(frames=frames, frame_shape=shape)


@pytest.mark.parametrize(
    ("frames", "shape"),
    [
        (_conv(), [1, 48, 48]),
        (_conv(), [3, 64, 64]),
        (_conv([4, 4], [2, 2]), [1, 20, 20]),
        (_conv([4], [1]), [1, 7, 7]),
        (FrameNetConfig(kind="mlp"), [20]),
    ],
)
def test_validate_frame_shape_accepts(frames, shape) -> None:
    cfg = ModelConfig(frames=frames, frame_shape=tuple(shape))
    assert cfg.frame_shape == shape  # stored as a list


def test_a_bad_value_names_the_config_file_or_the_override(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: abc\n")
    with pytest.raises(
        ConfigError, match=rf"^config file {re.escape(str(bad))}: train\.lr must be"
    ):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"^--set: train\.lr must be of type float, got 'abc'"):
        load_config("quickstart", ["train.lr=abc"])
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  lr: 0.001\n")
    with pytest.raises(ConfigError, match=r"^--set: train\.batch_size"):
        load_config(good, ["train.batch_size=0"])
