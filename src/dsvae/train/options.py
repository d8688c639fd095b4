"""Lightning's own options (train.accelerator, devices, strategy, precision, num_nodes),
checked before a run writes anything: a value Lightning rejects is a ConfigError that
names the key and the valid choices."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from dsvae.config import TrainConfig
from dsvae.errors import ConfigError

T = TypeVar("T")

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
"""The precision strings Lightning takes (``auto`` is dsvae's), as the message lists them."""
_OTHER_PRECISIONS = ("64", "32", "16", "bf16", "transformer-engine", "transformer-engine-float16")

# per key: what to write instead, added to Lightning's own reason
_HINTS = {
    "devices": "use a number of devices >= 1, -1 for all of them, or auto",
    "num_nodes": "use a number of machines >= 1",
    "precision": f"choose one of {', '.join(PRECISIONS)}",
}


def check_accelerator(accelerator: str) -> None:
    """Raise ConfigError unless ``accelerator`` is a name Lightning knows and is present here."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    names = sorted(AcceleratorRegistry.available_accelerators())
    present = [n for n in names if _present(AcceleratorRegistry[n]["accelerator"])]
    valid = ["auto", "gpu", *names]
    if accelerator not in valid:
        raise ConfigError(
            f"train.accelerator is {accelerator!r}; choose one of {', '.join(valid)} "
            f"(available here: {', '.join(present)})"
        )
    wanted = {"gpu": ["cuda", "mps"]}.get(accelerator, [accelerator])
    if accelerator != "auto" and not any(n in present for n in wanted):
        what = "GPU" if accelerator in ("gpu", "cuda", "mps") else accelerator.upper()
        raise ConfigError(
            f"train.accelerator is {accelerator!r} but no {what} is available here; available: "
            f"{', '.join(present)} (use auto or {present[0]})"
        )


def _present(accelerator_class: type) -> bool:
    try:
        return bool(accelerator_class.is_available())
    except Exception:  # noqa: BLE001 - a broken backend is not available
        return False


def check_names(cfg: TrainConfig) -> None:
    """Raise ConfigError if train.strategy or train.precision is not a name Lightning knows."""
    from lightning.pytorch.strategies import StrategyRegistry

    if cfg.strategy not in ("auto", *StrategyRegistry.available_strategies()):
        raise ConfigError(
            f"train.strategy is {cfg.strategy!r}; choose one of auto, {', '.join(_strategies())}"
        )
    if str(cfg.precision) not in (*PRECISIONS, *_OTHER_PRECISIONS):
        raise ConfigError(
            f"train.precision is {cfg.precision!r}; choose one of {', '.join(PRECISIONS)}"
        )


def checked_trainer(cfg: TrainConfig, make: Callable[[], T]) -> T:
    """``make()`` (which builds the Trainer), with Lightning's refusal of the options in
    ``cfg`` turned into a ConfigError that names the key, its value and what to use."""
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    check_accelerator(cfg.accelerator)
    check_names(cfg)
    try:
        return make()
    except (MisconfigurationException, ValueError, TypeError, ImportError, RuntimeError) as err:
        raise ConfigError(_explain(cfg, err)) from err


def _explain(cfg: TrainConfig, err: Exception) -> str:
    reason = " ".join(str(err).split()).rstrip(".") or type(err).__name__
    text = str(err).lower()
    for key in ("devices", "num_nodes", "precision", "strategy", "accelerator"):
        if key in text:
            hint = _HINTS.get(key, "choose another value or install what it needs")
            value = getattr(cfg, key)
            return f"train.{key} is {value!r}, which Lightning refuses here: {reason}; {hint}"
    options = ", ".join(
        f"train.{k}={getattr(cfg, k)!r}"
        for k in ("accelerator", "devices", "strategy", "precision", "num_nodes")
    )
    return f"Lightning refuses the training options ({options}): {reason}"


def _strategies() -> list[str]:
    """Lightning's strategy names, without the variants of each (``ddp_find_unused_...``)."""
    from lightning.pytorch.strategies import StrategyRegistry

    return [
        n
        for n in StrategyRegistry.available_strategies()
        if "find_unused" not in n and "stage" not in n and "offload" not in n
    ]
