"""Training configuration: frozen dataclasses, stored as JSON in every run folder.

A run must say exactly how it was made, so the configuration is plain data (no callables),
immutable once built, and round-trips through `config.json`. The command line is generated
from these fields (their `help` metadata is the option's help text), so an option is added in
one place. Every value is checked when the object is built, from Python, the command line or
a stored file alike: a bad setting fails before any data is read or any epoch is run.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .errors import ConfigError
from .literature import cite

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["onecycle", "cosine", "step", "constant"]
Precision = Literal["auto", "bf16", "fp32"]
TTA = Literal["none", "flip", "10crop"]
OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)
SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
TTA_MODES: tuple[str, ...] = typing.get_args(TTA)
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?|mps")
# Stored files are parsed strictly (a string is not a number) and may hold fields a newer
# version added; NaN and infinity are never a setting.
STRICT = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


def option(default: Any = dataclasses.MISSING, help: str = "", **kw: Any) -> Any:
    """A dataclass field with the help text the command line shows for it."""
    if callable(default) and not isinstance(default, bool | int | float | str):
        return field(default_factory=default, metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


def help_of(f: dataclasses.Field) -> str:
    return str(f.metadata.get("help", ""))


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, all run as batched tensor ops on the training device."""

    __pydantic_config__ = STRICT

    flip: bool = option(True, "horizontal flip with probability 1/2, as in all five reports")
    translate: int = option(
        4, f"random shift of up to this many pixels, as in {cite('000', '001')}"
    )
    rotate: float = option(
        0.0,
        f"random rotation of up to this many degrees, as in {cite('000', '001', '002')}",
    )
    crop: int = option(
        0,
        "half the images become a random corner crop of this many pixels, resized to 64 "
        f"(0 = off), as in {cite('004')}",
    )
    brightness: float = option(
        0.0, f"random additive brightness change, fraction of the range, as in {cite('001', '004')}"
    )
    contrast: float = option(0.0, f"random contrast factor in [1 - c, 1 + c], as in {cite('004')}")
    mixup: float = option(0.0, "alpha of the Beta(alpha, alpha) mixing of image pairs (0 = off)")
    cutmix: float = option(0.0, "alpha of the Beta(alpha, alpha) box pasting (0 = off)")
    mix_prob: float = option(1.0, "share of batches mixed when mixup or cutmix is on")

    def __post_init__(self) -> None:
        _check_types(self)
        _in_range(self, "translate", 0, 32)
        _in_range(self, "rotate", 0, 180)
        _in_range(self, "brightness", 0, 1)
        _in_range(self, "contrast", 0, 1)
        _in_range(self, "mixup", 0, 100)
        _in_range(self, "cutmix", 0, 100)
        _in_range(self, "mix_prob", 0, 1)
        if self.crop and not 8 <= self.crop < 64:
            raise ConfigError(
                f"crop must be 0 (off) or a size from 8 to 63 pixels, not {self.crop}"
            )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, apart from the data set itself."""

    __pydantic_config__ = STRICT

    model: str = option("resnet18", "registered model name (python -m tinyviz models)")
    model_options: dict[str, Any] = option(dict, "options of the model's builder")
    epochs: int = option(18, "epochs to train (with --resume: the new total, to extend a run)")
    batch_size: int = option(512, "images per optimisation step (over all processes)")
    optimizer: Optimizer = option("sgd", "sgd (with momentum), adam or adamw")
    lr: float = option(0.2, "peak learning rate (onecycle, cosine) or initial (step, constant)")
    momentum: float = option(0.9, "SGD momentum (0 = plain SGD)")
    nesterov: bool = option(True, "Nesterov momentum for SGD")
    weight_decay: float = option(5e-4, "L2 weight decay, not applied to norms and biases")
    schedule: Schedule = option("onecycle", "learning-rate schedule")
    warmup: float = option(
        0.25, "onecycle: fraction of steps rising; cosine: epochs of linear warm-up"
    )
    lr_decay: float = option(
        0.9,
        f"step schedule: multiply the rate by this every decay_every epochs, as in {cite('004')}",
    )
    decay_every: int = option(1, "step schedule: epochs between decays")
    label_smoothing: float = option(0.1, f"label smoothing of the loss; 0.1 in {cite('004')}")
    ema: float = option(
        0.0, "decay per step of an exponential moving average of the weights (0 = off)"
    )
    augment: AugmentConfig = option(AugmentConfig, "training-time augmentation")
    snapshots: int = option(5, "keep the weights of the K best epochs (snapshot ensemble)")
    epoch_views: tuple[int, ...] = option(
        (),
        "epochs to keep a light view of (half-precision weights and their analysis), for "
        "the explain pages' epoch slider, e.g. 1,3,6",
    )
    seed: int = option(0, "random seed of initialisation, data order and augmentation")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    precision: Precision = option("auto", "auto (bf16 on CUDA, fp32 on the CPU), bf16 or fp32")
    channels_last: bool = option(True, "channels-last memory on CUDA")
    compile: bool = option(False, "torch.compile the model for training")
    grad_clip: float = option(0.0, "clip the gradient norm to this (0 = off)")
    train_limit: int = option(0, "use only this many training images (0 = all)")
    val_limit: int = option(0, "evaluate on only this many validation images (0 = all)")
    eval_batch_size: int = option(1000, "images per batch when evaluating")

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):  # built from plain JSON in Python
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))
        if isinstance(self.epoch_views, list):  # a list from Python or plain JSON
            object.__setattr__(self, "epoch_views", tuple(self.epoch_views))
        _check_types(self)
        if not self.model or not isinstance(self.model_options, dict):
            raise ConfigError("model must be a registered name and model_options a mapping")
        for name in ("epochs", "batch_size", "decay_every", "eval_batch_size"):
            _at_least(self, name, 1)
        for name in (
            "snapshots",
            "seed",
            "train_limit",
            "val_limit",
            "weight_decay",
            "grad_clip",
            "warmup",
        ):
            _at_least(self, name, 0)
        if not self.lr > 0:
            raise ConfigError(f"lr must be a positive number, not {self.lr}")
        _in_range(self, "momentum", 0, 0.999)
        _in_range(self, "label_smoothing", 0, 0.99)
        _in_range(self, "ema", 0, 0.999999)
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"lr_decay must be in (0, 1], not {self.lr_decay}")
        if self.schedule == "onecycle" and self.warmup >= 1:
            raise ConfigError(
                f"onecycle's warmup is a fraction of the steps, below 1, not {self.warmup}"
            )
        if not DEVICE.fullmatch(self.device):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {self.device!r}")
        _check_epoch_views(self.epoch_views, self.epochs)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: Any) -> TrainConfig:
        """Rebuild from `config.json`'s "train" part, ignoring fields a newer version added."""
        import json

        try:
            return _ADAPTER.validate_json(json.dumps(obj))
        except (ValidationError, ValueError) as e:
            raise ConfigError(describe_error(e, "train")) from None

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


def describe_error(e: Exception, prefix: str = "") -> str:
    """pydantic's first complaint in one line: `train.lr: Input should be a valid number`."""
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{loc}: {msg}" if loc else msg
    return str(e)


# ------------------------------------------------------------------ checks


def _check_types(obj: Any) -> None:
    """Literal choices and plain types of every field, for objects built in Python too."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if typing.get_origin(hint) is Literal:
            if value not in typing.get_args(hint):
                choices = ", ".join(typing.get_args(hint))
                raise ConfigError(f"{f.name} must be one of {choices}, not {value!r}")
        elif hint is bool and not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be true or false, not {value!r}")
        elif hint is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{f.name} must be a whole number, not {value!r}")
        elif hint is float:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ConfigError(f"{f.name} must be a finite number, not {value!r}")
        elif hint is str and not isinstance(value, str):
            raise ConfigError(f"{f.name} must be text, not {value!r}")


def _check_epoch_views(views: Any, epochs: int) -> None:
    """Epoch views are whole epochs of this run, each once, in order: the slider's stops."""
    if not isinstance(views, tuple) or any(
        isinstance(e, bool) or not isinstance(e, int) for e in views
    ):
        raise ConfigError(f"epoch_views must be whole epoch numbers, not {views!r}")
    outside = [e for e in views if not 1 <= e <= epochs]
    if outside:
        raise ConfigError(f"epoch_views must be epochs from 1 to {epochs}, not {outside[0]}")
    if list(views) != sorted(set(views)):
        raise ConfigError(f"epoch_views must be sorted and each listed once, not {views}")


def _at_least(obj: Any, name: str, low: float) -> None:
    value = getattr(obj, name)
    if value < low:
        raise ConfigError(f"{name} must be at least {low}, not {value}")


def _in_range(obj: Any, name: str, low: float, high: float) -> None:
    value = getattr(obj, name)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, not {value}")


_ADAPTER = TypeAdapter(TrainConfig)
