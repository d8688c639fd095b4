"""Config dataclasses, one per component, validated on construction.

A YAML file (``configs/*.yaml``) holds two sections, ``model`` and ``train``;
:func:`load_config` reads it, applies ``key=value`` overrides and returns an
:class:`ExperimentConfig`. Every field is checked in ``__post_init__`` and an
invalid value raises :class:`~dsvae.errors.ConfigError` naming the key and the
valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsvae.choices import (
    CompileMode,
    ContrastAugment,
    ContrastLoss,
    Dynamics,
    FrameKind,
    FrameNorm,
    LikelihoodKind,
    LikelihoodScale,
    LrScaling,
    LrSchedule,
    MeanActivation,
    Posterior,
    StaticAugment,
    check_choice,
    names,
)
from dsvae.config_files import apply_overrides, from_dict, read_yaml
from dsvae.errors import ConfigError

MAX_WIDTH = 1 << 16
"""The widest layer or latent, and the largest frame side or vector, a config may ask for
(the model's total size is checked too, by :func:`dsvae.model.size.check_model_size`)."""
MAX_KERNEL = 31
MAX_SEED = 2**32 - 1
"""Seeds are passed to numpy, which takes 0 .. 2^32 - 1."""
MAX_THREADS = 1024


def _check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def _check_at_most(name: str, value: Any, limit: int) -> None:
    if value > limit:
        raise ConfigError(f"{name} must be at most {limit:,}, got {value:,}")


def _check_width(name: str, value: Any) -> None:
    _check_positive(name, value)
    _check_at_most(name, value, MAX_WIDTH)


@dataclass
class FrameNetConfig:
    """Per-frame encoder and the mirrored decoder p(x_t | z_t, f).

    ``kind="conv"`` is for images (C, H, W): ``channels[i]`` filters of size
    ``kernel`` with stride ``strides[i]``; the decoder mirrors it with transposed
    convolutions. ``kind="mlp"`` is for feature vectors (D,), e.g. spectra, with
    hidden layer sizes ``hidden``. Both map a frame to ``feature_dim`` features.

    ``norm`` is the normalisation after each conv layer: ``batch`` (BatchNorm over
    the B*T frames of a batch, so in train mode the frames of a batch share
    statistics), ``group`` (GroupNorm with up to 8 groups, computed within each
    frame), ``layer`` (one group: LayerNorm over each frame's channels and pixels)
    or ``none``. Only ``batch`` mixes frames.
    """

    kind: FrameKind = "conv"
    channels: list[int] = field(default_factory=lambda: [64, 64, 64, 64])
    strides: list[int] = field(default_factory=lambda: [1, 2, 2, 2])
    kernel: int = 5
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    feature_dim: int = 256
    norm: FrameNorm = "batch"

    @staticmethod
    def upgrade_dict(data: dict) -> dict:
        """Files written before ``norm`` replaced the boolean ``batch_norm``."""
        if "batch_norm" not in data or "norm" in data:
            return data
        legacy = data["batch_norm"]
        data = {k: v for k, v in data.items() if k != "batch_norm"}
        data["norm"] = "batch" if legacy is True else "none" if legacy is False else legacy
        return data

    def __post_init__(self) -> None:
        check_choice("model.frames.kind", self.kind, names(FrameKind))
        check_choice("model.frames.norm", self.norm, names(FrameNorm))
        _check_width("model.frames.feature_dim", self.feature_dim)
        if self.kind == "conv":
            if not self.channels:
                raise ConfigError("model.frames.channels must list at least one layer width")
            if len(self.strides) != len(self.channels):
                raise ConfigError(
                    "model.frames.strides must have one entry per conv layer: "
                    f"{len(self.channels)} channels but {len(self.strides)} strides"
                )
            for s in self.strides:
                check_choice("model.frames.strides[i]", s, (1, 2))
            if self.kernel < 1 or self.kernel % 2 == 0 or self.kernel > MAX_KERNEL:
                raise ConfigError(
                    f"model.frames.kernel must be odd and in 1..{MAX_KERNEL}, got {self.kernel}"
                )
            for c in self.channels:
                _check_width("model.frames.channels[i]", c)
        for h in self.hidden:
            _check_width("model.frames.hidden[i]", h)

    @property
    def downsample(self) -> int:
        """Factor by which the conv encoder shrinks H and W."""
        return 2 ** sum(1 for s in self.strides if s == 2)


@dataclass
class LikelihoodConfig:
    """The observation model p(x_t | z_t, f).

    ``bernoulli``: binary frames, decoder outputs logits. ``gaussian``: a Normal
    with mean from the decoder and a scale that is ``fixed`` (``scale``) or
    ``learned`` (one log-scale per channel, or per dimension for vectors).
    ``mean_activation="sigmoid"`` keeps image means in [0, 1].
    """

    kind: LikelihoodKind = "bernoulli"
    scale: LikelihoodScale = "fixed"
    scale_value: float = 0.1
    mean_activation: MeanActivation = "sigmoid"
    min_scale: float = 1e-3

    def __post_init__(self) -> None:
        check_choice("model.likelihood.kind", self.kind, names(LikelihoodKind))
        check_choice("model.likelihood.scale", self.scale, names(LikelihoodScale))
        check_choice(
            "model.likelihood.mean_activation", self.mean_activation, names(MeanActivation)
        )
        _check_positive("model.likelihood.scale_value", self.scale_value)
        _check_positive("model.likelihood.min_scale", self.min_scale)


@dataclass
class ModelConfig:
    """The DSVAE of Eq. 1 with the factorised (Eq. 3) or full (Eq. 4) posterior.

    ``frame_shape`` is (C, H, W) for images or (D,) for vectors; it may be left
    out of a YAML file, and training fills it in from the data set.

    ``dynamics="stochastic"`` is the DSVAE's LSTM prior over z_t; ``lstm-f`` and
    ``lstm-c`` are the deterministic baselines of Section 4.3, where ``z_dim`` is
    the size of their single global z and ``posterior`` does not apply.
    """

    f_dim: int = 256
    z_dim: int = 32
    hidden_dim: int = 512
    posterior: Posterior = "factorised"
    dynamics: Dynamics = "stochastic"
    frame_shape: list[int] | None = None
    frames: FrameNetConfig = field(default_factory=FrameNetConfig)
    likelihood: LikelihoodConfig = field(default_factory=LikelihoodConfig)

    def __post_init__(self) -> None:
        for name in ("f_dim", "z_dim", "hidden_dim"):
            _check_width(f"model.{name}", getattr(self, name))
        check_choice("model.posterior", self.posterior, names(Posterior))
        check_choice("model.dynamics", self.dynamics, names(Dynamics))
        if self.frame_shape is not None:
            self.frame_shape = list(self.frame_shape)
            self.validate_frame_shape(self.frame_shape)

    def validate_frame_shape(self, shape: list[int]) -> None:
        """Check that this network can model frames of ``shape``."""
        for size in shape:
            _check_width("model.frame_shape[i]", size)
        if self.frames.kind == "conv":
            if len(shape) != 3 or shape[0] not in (1, 3):
                raise ConfigError(
                    f"a conv frame network needs image frames (C, H, W) with C in [1, 3], "
                    f"got frame shape {tuple(shape)}; use model.frames.kind=mlp for vectors"
                )
            c, h, w = shape
            d = self.frames.downsample
            if h != w or h % d != 0:
                raise ConfigError(
                    f"frames must be square with a side divisible by {d} (the conv encoder "
                    f"downsamples by {d}), e.g. 32x32 or 64x64; got {h}x{w}"
                )
        elif len(shape) != 1:
            raise ConfigError(
                f"an mlp frame network needs vector frames (D,), got frame shape {tuple(shape)}; "
                "use model.frames.kind=conv for images"
            )


@dataclass
class TrainConfig:
    """Optimisation and run settings (Adam, as in the paper).

    ``beta_f`` and ``beta_z`` weight the two KL terms (1 and 1: Eq. 2), after a linear
    warm-up over ``kl_warmup_steps``. ``mi_weight`` > 0 adds that multiple of a minibatch
    estimate of I(f; z_1:T) to the loss (later work's penalty, see
    :mod:`dsvae.model.information`); 0 is the paper's objective. ``contrast_weight`` > 0
    adds that multiple of a contrastive loss between E_q[z_1:T] of each sequence and of an
    augmented copy (``contrast_augment``: ``pitch`` shifts speech spectra by up to
    ``pitch_max_factor``, ``channels`` permutes RGB channels, ``colour`` also changes
    their gain and offset (brightness, contrast), ``auto`` picks by the
    data; C-DSVAE's idea), with cosine similarities over ``contrast_temperature``.
    ``static_contrast_weight`` > 0 adds the same loss between E_q[f] of each sequence and
    of a copy that keeps its content and loses its dynamics (``static_contrast_augment``:
    ``shuffle`` permutes the frames in time, as C-DSVAE does; ``mirror-shuffle`` also
    mirrors every frame left to right, so that f cannot hold which way a video faces).
    ``contrast_loss`` says how both terms compare the two: ``infonce`` asks each sequence
    to pick out its copy among the batch (cosine similarities over
    ``contrast_temperature``), which any feature that tells the sequences apart satisfies;
    ``match`` asks the two posteriors to be the same (their symmetric KL, in nats per
    sequence), so the latent must be invariant to the augmentation.

    ``val_fraction`` of the sequences are held out for validation, drawn at random with
    ``val_seed`` (``None``: ``seed``). With ``val_group`` naming a label of the data set
    (e.g. ``character`` for Sprites), that fraction of the label's distinct values is held
    out instead, with all their sequences: the validation characters are then never seen
    in training. A fixed ``val_seed`` keeps the same validation part across training seeds.
    Validation runs every ``val_every_n_epochs`` epochs, on the first ``val_max_batches``
    batches of the (unshuffled, so always the same) validation split (``None``: all of it).

    The learning rate (see :mod:`dsvae.train.schedule` and docs/performance.md): with
    ``lr_reference_batch`` set, ``lr`` is the rate for a global batch (``batch_size`` ×
    processes) of that size and is scaled to the run's global batch, by the square root
    of the ratio (``lr_scaling: sqrt``, the rule that keeps Adam's update noise the same)
    or by the ratio (``linear``, SGD's rule); ``None`` uses ``lr`` as it is. It then
    rises linearly over the first ``lr_warmup_steps`` optimiser steps, from 1/N of that
    rate to all of it, and stays there (``lr_schedule: constant``) or follows a cosine
    down to ``lr_min_factor`` × the rate at the run's last step (``cosine``; the last step
    is the earlier of ``max_steps`` and ``max_epochs`` × the steps per epoch: a run that
    ``max_time_minutes`` stops first ends before its rate is down).

    ``pictures_every_n_epochs`` > 0 draws reconstructions and samples into the run
    folder's ``pictures/`` while training; 0 turns it off.

    Speed settings (none changes the maths; see docs/performance.md):
    ``channels_last`` stores conv weights and activations NHWC (``None``: on with
    CUDA); ``fused_adam`` uses the fused Adam kernel (``None``: on with CUDA);
    ``data_on_device`` copies the training sequences to the accelerator once, as
    uint8, and draws batches there (``None``: on with CUDA when they take under a
    quarter of its memory); ``torch_compile`` compiles the model with
    ``torch.compile`` (in ``compile_mode``: ``reduce-overhead`` adds CUDA graphs);
    ``async_checkpoints`` writes checkpoints in a thread from a copy of the state, so
    that training goes on while the file is written (``None``: on with CUDA);
    ``threads`` sets the CPU threads (``None``: torch's default,
    one per physical core). ``precision: auto`` is ``bf16-mixed`` on a GPU that
    supports bf16 and ``32-true`` elsewhere; any Lightning precision string works.
    """

    seed: int = 0
    batch_size: int = 32
    lr: float = 2e-4
    lr_schedule: LrSchedule = "constant"
    lr_warmup_steps: int = 0
    lr_min_factor: float = 0.1
    lr_reference_batch: int | None = None
    lr_scaling: LrScaling = "sqrt"
    max_epochs: int = 10
    max_steps: int = -1
    max_time_minutes: float | None = None
    val_fraction: float = 0.05
    val_group: str | None = None
    val_seed: int | None = None
    beta_f: float = 1.0
    beta_z: float = 1.0
    mi_weight: float = 0.0
    contrast_weight: float = 0.0
    contrast_augment: ContrastAugment = "auto"
    contrast_temperature: float = 0.5
    static_contrast_weight: float = 0.0
    static_contrast_augment: StaticAugment = "shuffle"
    contrast_loss: ContrastLoss = "infonce"
    pitch_max_factor: float = 1.8
    kl_warmup_steps: int = 0
    grad_clip: float | None = None
    num_workers: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str | int = "auto"
    checkpoint_every_n_epochs: int = 1
    async_checkpoints: bool | None = None
    val_every_n_epochs: int = 1
    val_max_batches: int | None = None
    log_every_n_steps: int = 10
    pictures_every_n_epochs: int = 0
    progress_bar: bool = True
    channels_last: bool | None = None
    fused_adam: bool | None = None
    data_on_device: bool | None = None
    torch_compile: bool = False
    compile_mode: CompileMode = "default"
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("seed", "val_seed"):
            if getattr(self, name) is not None:
                _check_positive(f"train.{name}", getattr(self, name), allow_zero=True)
                _check_at_most(f"train.{name}", getattr(self, name), MAX_SEED)
        _check_positive("train.batch_size", self.batch_size)
        _check_positive("train.lr", self.lr)
        _check_positive("train.max_epochs", self.max_epochs)
        check_choice("train.lr_schedule", self.lr_schedule, names(LrSchedule))
        check_choice("train.lr_scaling", self.lr_scaling, names(LrScaling))
        _check_positive("train.lr_warmup_steps", self.lr_warmup_steps, allow_zero=True)
        if not 0.0 <= self.lr_min_factor <= 1.0:
            raise ConfigError(f"train.lr_min_factor must be in [0, 1], got {self.lr_min_factor}")
        if self.lr_reference_batch is not None:
            _check_positive("train.lr_reference_batch", self.lr_reference_batch)
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"train.max_steps must be -1 (no limit) or > 0, got {self.max_steps}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"train.val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.val_group is not None and not (isinstance(self.val_group, str) and self.val_group):
            raise ConfigError(
                f"train.val_group must be the name of a label (e.g. character) or null, "
                f"got {self.val_group!r}"
            )
        for name in (
            "beta_f",
            "beta_z",
            "mi_weight",
            "contrast_weight",
            "static_contrast_weight",
            "kl_warmup_steps",
            "num_workers",
        ):
            _check_positive(f"train.{name}", getattr(self, name), allow_zero=True)
        if self.max_time_minutes is not None:
            _check_positive("train.max_time_minutes", self.max_time_minutes)
        _check_positive("train.contrast_temperature", self.contrast_temperature)
        if self.pitch_max_factor < 1.0:
            raise ConfigError(f"train.pitch_max_factor must be >= 1, got {self.pitch_max_factor}")
        check_choice("train.contrast_augment", self.contrast_augment, names(ContrastAugment))
        check_choice(
            "train.static_contrast_augment", self.static_contrast_augment, names(StaticAugment)
        )
        check_choice("train.contrast_loss", self.contrast_loss, names(ContrastLoss))
        if self.grad_clip is not None:
            _check_positive("train.grad_clip", self.grad_clip)
        _check_positive("train.checkpoint_every_n_epochs", self.checkpoint_every_n_epochs)
        _check_positive("train.val_every_n_epochs", self.val_every_n_epochs)
        if self.val_max_batches is not None:
            _check_positive("train.val_max_batches", self.val_max_batches)
        check_choice("train.compile_mode", self.compile_mode, names(CompileMode))
        _check_positive("train.log_every_n_steps", self.log_every_n_steps)
        _check_positive(
            "train.pictures_every_n_epochs", self.pictures_every_n_epochs, allow_zero=True
        )
        if self.threads is not None:
            _check_positive("train.threads", self.threads)
            _check_at_most("train.threads", self.threads, MAX_THREADS)
        _check_at_most("train.num_workers", self.num_workers, MAX_THREADS)
        _check_positive("train.num_nodes", self.num_nodes)


@dataclass
class ExperimentConfig:
    """A whole experiment: the model and how to train it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from YAML (or defaults) plus ``key=value`` overrides.

    ``path`` is a YAML file or the name of a shipped config such as ``"quickstart"``.
    """
    from dsvae.configs import config_path

    file = config_path(path) if path is not None else None
    data = read_yaml(file) if file is not None else {}
    try:
        return from_dict(ExperimentConfig, apply_overrides(data, overrides or []))
    except ConfigError as err:
        raise ConfigError(f"{_culprit(file, data, overrides)}{err}") from err


def _culprit(file: Path | None, data: dict, overrides: list[str] | None) -> str:
    """Where a bad value came from: the config file (when it is bad alone) or the overrides."""
    if file is None:
        return "--set: " if overrides else ""
    try:
        from_dict(ExperimentConfig, data)
    except ConfigError:
        return f"config file {file}: "
    return "--set: " if overrides else ""
