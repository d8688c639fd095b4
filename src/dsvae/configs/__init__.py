"""The experiment configs shipped with dsvae (``configs/`` in the repository)."""

from __future__ import annotations

from pathlib import Path

from dsvae.errors import ConfigError

CONFIG_DIR = Path(__file__).parent


def available() -> list[str]:
    """Names of the shipped configs, e.g. ``quickstart``."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the shipped config of that name (``quickstart``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"no config file {name_or_path!r} and no shipped config of that name; "
        f"shipped configs: {available()}"
    )
