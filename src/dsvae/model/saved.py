"""Saved models: a folder with ``config.json`` and ``model.safetensors``; nothing pickled."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dsvae.atomic import atomic_path, atomic_write_json
from dsvae.config import ModelConfig
from dsvae.config_files import from_dict, to_dict
from dsvae.errors import ConfigError, ModelFileError
from dsvae.model.dsvae import DSVAE
from dsvae.model.registry import build_model
from dsvae.text_files import Refusal, read_json

FORMAT = "dsvae-model"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def save_model(model: DSVAE, directory: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically each)."""
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": to_dict(model.config)}
    return save_folder(model, directory, WEIGHTS_FILE, CONFIG_FILE, document)


def save_folder(
    module: torch.nn.Module,
    directory: str | Path,
    weights_file: str,
    config_file: str,
    document: dict[str, Any],
) -> Path:
    """Write ``weights_file`` (safetensors) then ``config_file`` (``document`` as JSON).

    Each file is written atomically; ``document["format"]`` is also stored in the weights'
    metadata. Used for models and for the Sprites judge.
    """
    directory = Path(directory)
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    # atomic_path makes the folder, and removes it again if the first write fails
    with atomic_path(directory / weights_file) as tmp:
        save_file(tensors, str(tmp), metadata={"format": document["format"]})
    atomic_write_json(directory / config_file, document)
    return directory


def read_document(file: Path, format: str, key: str, what: str) -> dict[str, Any]:
    """The JSON object in ``file``, checked to be a ``format`` document holding ``key``.

    Raises :class:`ModelFileError` ("... is not a dsvae ``what`` config") otherwise.
    """
    data = read_json(file, refuse=Refusal(ModelFileError))
    if not isinstance(data, dict) or data.get("format") != format or key not in data:
        raise ModelFileError(f"{file} is not a dsvae {what} config")
    return data


def resolve_model_dir(path: str | Path) -> Path:
    """A saved model folder, or a run folder whose ``model/`` holds one."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist; pass a run folder or a saved model folder")
    if (path / CONFIG_FILE).is_file():
        return path
    if (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    hint = ""
    if (path / "checkpoints").is_dir():
        hint = " (the run has checkpoints but no final model: finish it with `dsvae train ... --resume`)"
    raise ModelFileError(
        f"{path} has no {CONFIG_FILE}: not a saved dsvae model or run folder{hint}"
    )


def read_model_config(directory: Path) -> ModelConfig:
    data = read_document(directory / CONFIG_FILE, FORMAT, "model", "model")
    try:
        return from_dict(ModelConfig, data["model"], "model.")
    except ConfigError as err:
        raise ModelFileError(f"{directory / CONFIG_FILE}: {err}") from err


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> DSVAE:
    """Load a model saved by :func:`save_model` (from its folder or a run folder), in eval mode,
    on the device ``map_location``."""
    directory = resolve_model_dir(path)
    config = read_model_config(directory)
    try:
        model = build_model(config)
    except ConfigError as err:
        raise ModelFileError(f"{directory / CONFIG_FILE}: {err}") from err
    load_weights(model, directory / WEIGHTS_FILE, map_location)
    return model.to(map_location).eval()


def load_weights(
    module: torch.nn.Module,
    weights: Path,
    map_location: str | torch.device = "cpu",
    config_name: str = CONFIG_FILE,
) -> None:
    """Load a safetensors file into ``module``, checking every tensor's name and shape.

    Raises :class:`ModelFileError` for a missing file, a file that is not safetensors
    (a pickle is never unpickled) and tensors that do not match the module.
    """
    if not weights.is_file():
        raise ModelFileError(f"{weights.parent} has no {weights.name}")
    try:
        state = load_file(str(weights), device=str(map_location))
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelFileError(
            f"{weights} is not a valid safetensors file ({err}); dsvae never loads pickled weights"
        ) from err
    load_checked_state(module, state, str(weights), config_name)


def load_checked_state(
    module: torch.nn.Module, state: Mapping[str, Any], source: str, against: str
) -> None:
    """Load ``state`` into ``module`` once it is known to fit: the same tensor names (the
    missing and the unexpected ones are named), the same shapes, finite values.

    ``source`` names where the tensors come from and ``against`` the config that built
    ``module``; a mismatch raises :class:`ModelFileError` naming both.
    """
    expected = module.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        parts = [f"lacks {_names(missing)}"] * bool(missing)
        parts += [f"has {_names(unexpected)} that it does not know"] * bool(unexpected)
        raise ModelFileError(f"{source} does not match {against}: it {' and '.join(parts)}")
    bad = [k for k, v in state.items() if not _same_shape(v, expected[k])]
    if bad:
        raise ModelFileError(f"{source} does not match {against}: tensors {bad[:3]} differ")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(
                f"{source}: tensor {name} holds NaN or infinite values; the weights were saved "
                "after training diverged, use an earlier checkpoint"
            )
    module.load_state_dict(state)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:3]) + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")
    return f"tensor{'s' * (len(keys) > 1)} {shown}"


def _same_shape(value: Any, expected: torch.Tensor) -> bool:
    return isinstance(value, torch.Tensor) and value.shape == expected.shape
