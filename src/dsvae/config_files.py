"""Configs as plain data: dataclass <-> dict with type checks, YAML files, ``key=value`` overrides.

Nothing here knows the config dataclasses of :mod:`dsvae.config`; :func:`from_dict`
builds any of them from a mapping, naming the key of every wrong value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from dsvae import text_files
from dsvae.choices import check_choice, names
from dsvae.errors import ConfigError


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, checking keys and types.

    Unknown keys and values of the wrong type raise :class:`ConfigError` with the
    dotted key, e.g. ``model.z_dim``, and the valid keys. A class with a static method
    ``upgrade_dict(data) -> data`` first turns keys of older files into current ones.
    """
    where = prefix.rstrip(".") or "the config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {type(data).__name__}")
    upgrade = getattr(cls, "upgrade_dict", None)  # a class may read its older files
    if upgrade is not None:
        data = upgrade(data)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]!s} in {where}; valid keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {k: _coerce(hints[k], v, f"{prefix}{k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key} has an invalid value {value!r}"
        )
    if origin is Literal:
        check_choice(key, value, names(tp))
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        (item_type,) = typing.get_args(tp)
        return [_coerce(item_type, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return _coerce_scalar(tp, value, key)


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**63:
                digits = len(str(abs(value)))
                raise ConfigError(f"{key} must fit in 64 bits, got a {digits}-digit number")
            return value
    elif tp is float:
        number = _as_float(value)
        if number is not None:
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - every field type is listed above
        raise TypeError(f"unsupported config type {tp} for {key}")
    raise ConfigError(f"{key} must be of type {tp.__name__}, got {value!r}")


def _as_float(value: Any) -> float | None:
    """A finite float from a number or a numeric string (YAML reads ``1e-3`` as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def to_dict(config: Any) -> dict:
    """Plain-dict form of a config dataclass (for YAML / JSON)."""
    return dataclasses.asdict(config)


# ----------------------------------------------------------------------------- YAML and overrides


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as YAML (``3``, ``0.1``, ``[1, 2]``, ``full``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. model.z_dim=16")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = text_files.parse_yaml(raw) if raw.strip() else None
    except ValueError as err:
        raise ConfigError(f"override {text!r}: the value {err}") from err
    return parts, value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Return a copy of ``data`` with each ``key=value`` override applied."""
    data = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return data


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def read_yaml(path: str | Path) -> dict:
    """Read a YAML mapping with clear errors for a missing, malformed or hostile file
    (:mod:`dsvae.text_files`)."""
    path = Path(path)
    if not os.path.lexists(path):
        raise ConfigError(f"config file {path} does not exist; see configs/ for examples")
    data = text_files.read_yaml(path, refuse=text_files.Refusal(ConfigError, "config file"))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping with model: and train: sections")
    return data


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
