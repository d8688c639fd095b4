"""The Sprites judge: "a classifier trained on the labelled frames" (Sec. 4.1).

It predicts each static attribute (skin, pants, tops, hair) from every single frame and the
action from the whole sequence. Its probabilities on data and on generated frames feed the
metrics of Table 1 (:mod:`dsvae.eval.metrics`). It is trained by
:func:`dsvae.train.judge.train_judge`.

A trained judge is a folder with ``judge.json`` (config and training info) and
``judge.safetensors`` (weights), written by :func:`dsvae.model.saved.save_folder` like a
model; nothing is pickled.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dsvae.data import SequenceDataset, model_batches
from dsvae.errors import ConfigError, DataError, ModelFileError
from dsvae.eval.metrics import accuracy
from dsvae.model.saved import load_weights, read_document, save_folder

FORMAT = "dsvae-judge"
FORMAT_VERSION = 1
CONFIG_FILE = "judge.json"
WEIGHTS_FILE = "judge.safetensors"
SPRITES_ATTRIBUTES = (("skin", 6), ("pants", 6), ("tops", 6), ("hair", 6))
"""Columns of the Sprites ``attributes`` label, in order, with their number of variants."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class JudgeConfig:
    """Shape of the judge: a per-frame CNN, one head per attribute, one action head.

    ``channels[i]`` filters of size 4 and stride 2 (each halves H and W), then a linear
    layer to ``feature_dim``. ``attributes`` names the columns of the ``attributes`` label
    with their number of classes; ``length`` is the T of the training sequences.
    """

    frame_shape: list[int] = field(default_factory=lambda: [3, 64, 64])
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    feature_dim: int = 256
    attributes: tuple[tuple[str, int], ...] = SPRITES_ATTRIBUTES
    n_actions: int = 9
    length: int = 8

    def __post_init__(self) -> None:
        shape = list(self.frame_shape)
        if (
            len(shape) != 3
            or not all(_is_int(s) and s > 0 for s in shape)
            or shape[0] not in (1, 3)
        ):
            raise ConfigError(
                f"judge frame_shape must be [C, H, W] with C in {{1, 3}}, got {self.frame_shape!r}"
            )
        if not self.channels or not all(_is_int(c) and c > 0 for c in self.channels):
            raise ConfigError(f"judge channels must be positive ints, got {self.channels!r}")
        step = 2 ** len(self.channels)
        if shape[1] % step or shape[2] % step:
            raise ConfigError(
                f"judge frames of {shape[1]}x{shape[2]} cannot be halved {len(self.channels)} "
                f"times; H and W must be multiples of {step}, or use fewer channels"
            )
        for name in ("feature_dim", "length"):
            if not _is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise ConfigError(f"judge {name} must be an int >= 1, got {getattr(self, name)!r}")
        if not _is_int(self.n_actions) or self.n_actions < 2:
            raise ConfigError(f"judge n_actions must be an int >= 2, got {self.n_actions!r}")
        self.frame_shape, self.channels = shape, list(self.channels)
        self.attributes = self._checked_attributes()

    def _checked_attributes(self) -> tuple[tuple[str, int], ...]:
        try:
            pairs = tuple((name, count) for name, count in self.attributes)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"judge attributes must be (name, classes) pairs, got {self.attributes!r}"
            ) from err
        names = [name for name, _ in pairs]
        if not pairs or len(set(names)) != len(names) or "action" in names:
            raise ConfigError(
                f"judge attributes need at least one pair and unique names other than "
                f"'action', got {names}"
            )
        for name, count in pairs:
            if not isinstance(name, str) or not name or not _is_int(count) or count < 2:
                raise ConfigError(
                    f"judge attribute {name!r} needs a name and at least 2 classes, got {count!r}"
                )
        return pairs

    @property
    def heads(self) -> dict[str, int]:
        """Head name -> number of classes: the attributes, then ``action``."""
        return {**dict(self.attributes), "action": self.n_actions}

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["attributes"] = [list(pair) for pair in self.attributes]
        return data

    @classmethod
    def from_dict(cls, data: Any) -> JudgeConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a judge config must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ConfigError(f"unknown judge config key {unknown[0]!r}")
        return cls(**data)


class SpritesJudge(nn.Module):
    """p(attribute | x_t) for each frame and p(action | x_1:T) for each sequence.

    A CNN maps each frame to features; a linear head per attribute classifies each frame;
    two temporal convolutions over the frames' features, averaged over time, give the action.
    """

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        in_ch, h, w = config.frame_shape
        layers: list[nn.Module] = []
        for out_ch in config.channels:
            layers += [nn.Conv2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2)]
            in_ch = out_ch
        self.conv = nn.Sequential(*layers)
        cells = (h >> len(config.channels)) * (w >> len(config.channels))
        f = config.feature_dim
        self.features = nn.Sequential(nn.Linear(in_ch * cells, f), nn.LeakyReLU(0.2))
        self.attribute_heads = nn.ModuleDict(
            {name: nn.Linear(f, k) for name, k in config.attributes}
        )
        self.temporal = nn.Sequential(
            nn.Conv1d(f, f, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv1d(f, f, 3, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.action_head = nn.Linear(f, config.n_actions)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits by head: attributes ``(B, T, K)`` per frame, ``action`` ``(B, n_actions)``."""
        self._check_input(x)
        b, t = x.shape[:2]
        h = self.conv(x.flatten(0, 1))  # (B*T, C', H', W')
        feats = self.features(h.flatten(1)).view(b, t, -1)  # (B, T, F)
        out = {name: head(feats) for name, head in self.attribute_heads.items()}
        pooled = self.temporal(feats.transpose(1, 2)).mean(dim=2)  # (B, F)
        out["action"] = self.action_head(pooled)
        return out

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Softmax probabilities by head, like :meth:`forward`, in eval mode, without grad.

        ``x`` is float ``(B, T, C, H, W)`` in [0, 1] on any device; the probabilities come
        back on that device. The module's train/eval mode is restored afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            logits = self(x.to(device))
        finally:
            self.train(was_training)
        return {name: v.softmax(dim=-1).to(x.device) for name, v in logits.items()}

    def _check_input(self, x: torch.Tensor) -> None:
        if not x.is_floating_point() or x.ndim != 5 or list(x.shape[2:]) != self.config.frame_shape:
            raise DataError(
                f"the judge takes float frames (B, T, {', '.join(map(str, self.config.frame_shape))}) "
                f"in [0, 1], got {x.dtype} of shape {tuple(x.shape)}; convert uint8 batches with "
                "dsvae.data.prepare_frames"
            )


def _describe(frame_shape: tuple[int, ...] | list[int]) -> str:
    if len(frame_shape) != 3:
        return f"vectors of shape {list(frame_shape)}"
    c, h, w = frame_shape
    return f"{h}x{w} {'RGB' if c == 3 else 'grey'}"


def _check_shape(config: JudgeConfig, frame_shape: tuple[int, ...] | list[int]) -> None:
    if list(frame_shape) != config.frame_shape:
        raise DataError(
            f"the judge was trained on {_describe(config.frame_shape)} frames, the data "
            f"has {_describe(frame_shape)} frames; train a judge on data of this size"
        )


def check_frame_shape(judge: SpritesJudge, frame_shape: tuple[int, ...] | list[int]) -> None:
    """Raise DataError unless data frames of ``frame_shape`` (C, H, W) suit the judge."""
    _check_shape(judge.config, frame_shape)


# ----------------------------------------------------------------------------- labelled data


def sprites_labels(dataset: SequenceDataset, config: JudgeConfig) -> tuple[np.ndarray, np.ndarray]:
    """The ``attributes`` (N, A) and ``action`` (N,) labels, checked against the judge's heads."""
    where = dataset.path
    for name in ("attributes", "action"):
        if name not in dataset.labels:
            raise DataError(
                f"{where} has no {name!r} labels, which the judge learns from; use a Sprites split "
                "(`dsvae.data.sprites.build_sprites`)"
            )
    _check_shape(config, dataset.frame_shape)
    attributes = dataset.labels["attributes"]
    action = dataset.labels["action"]
    n_attr = len(config.attributes)
    if attributes.ndim != 2 or attributes.shape[1] != n_attr or action.ndim != 1:
        raise DataError(
            f"{where}: labels 'attributes' must be (N, {n_attr}) and 'action' (N,), got "
            f"{attributes.shape} and {action.shape}"
        )
    for name, values, k in [
        *((a, attributes[:, i], c) for i, (a, c) in enumerate(config.attributes)),
        ("action", action, config.n_actions),
    ]:
        if not np.issubdtype(values.dtype, np.integer) or values.min() < 0 or values.max() >= k:
            raise DataError(f"{where}: label {name!r} must hold integers in 0..{k - 1}")
    return attributes.astype(np.int64), action.astype(np.int64)


# ----------------------------------------------------------------------------- saving and loading


def save_judge(judge: SpritesJudge, directory: str | Path, info: dict[str, Any]) -> Path:
    """Write ``judge.safetensors`` then ``judge.json`` (config + ``info``), each atomically."""
    try:
        json.dumps(info)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the judge's info must be JSON-serialisable: {err}") from err
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": judge.config.to_dict(),
        "info": info,
    }
    return save_folder(judge, directory, WEIGHTS_FILE, CONFIG_FILE, document)


def read_judge_json(directory: str | Path) -> tuple[JudgeConfig, dict[str, Any]]:
    """The config and training info in ``directory/judge.json``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(
            f"judge folder {directory} does not exist; train one with dsvae.train.judge.train_judge"
        )
    file = directory / CONFIG_FILE
    if not file.is_file():
        raise ModelFileError(f"{directory} has no {CONFIG_FILE}: not a saved judge folder")
    data = read_document(file, FORMAT, "config", "judge")
    try:
        config = JudgeConfig.from_dict(data["config"])
    except (ConfigError, TypeError) as err:
        raise ModelFileError(f"{file}: {err}") from err
    return config, data.get("info", {})


def load_judge(directory: str | Path, map_location: str | torch.device = "cpu") -> SpritesJudge:
    """Load a judge saved by :func:`save_judge`, in eval mode; never unpickles anything."""
    directory = Path(directory)
    config, _ = read_judge_json(directory)
    judge = SpritesJudge(config)
    load_weights(judge, directory / WEIGHTS_FILE, map_location, CONFIG_FILE)
    return judge.to(map_location).eval()


# ----------------------------------------------------------------------------- accuracy


@torch.no_grad()
def judge_accuracy(
    judge: SpritesJudge, data_dir: str | Path, batch_size: int = 256
) -> dict[str, float]:
    """Accuracy per head on a labelled data-set folder (attributes over frames, action per sequence)."""
    dataset = SequenceDataset(data_dir)
    attributes, action = sprites_labels(dataset, judge.config)
    device = next(judge.parameters()).device
    probs: dict[str, list[torch.Tensor]] = {}
    for x in model_batches(dataset, batch_size, device=device):
        for name, p in judge.predict_proba(x).items():
            probs.setdefault(name, []).append(p.reshape(-1, p.shape[-1]).cpu())
    t = dataset.length
    labels = {
        name: np.repeat(attributes[:, i], t) for i, (name, _) in enumerate(judge.config.attributes)
    }
    labels["action"] = action
    return {name: accuracy(torch.cat(probs[name]), labels[name]) for name in judge.config.heads}
