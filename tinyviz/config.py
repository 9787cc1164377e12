"""Training configuration: frozen dataclasses, stored as JSON in every run folder.

A run must say exactly how it was made, so the configuration is plain data (no callables),
immutable once built, and round-trips through `config.json`. The command line is generated
from these fields, so a new option is added in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("onecycle", "cosine", "step", "constant")


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation, all run as batched tensor ops on the training device."""

    flip: bool = True  # horizontal flip with probability 1/2 (every seed)
    translate: int = 4  # random shift of up to this many pixels (seed 000, 001)
    rotate: float = 0.0  # random rotation of up to this many degrees (seeds 000, 001, 002)
    crop: int = 0  # seed 004: half the images become a random 56x56 corner crop, resized to 64
    brightness: float = 0.0  # random additive brightness change, fraction of the range (001, 004)
    contrast: float = 0.0  # random contrast factor in [1 - c, 1 + c] (004)
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of image pairs; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) box pasting; 0 = off
    mix_prob: float = 1.0  # fraction of batches that are mixed when mixup/cutmix are on


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run, apart from the data set itself."""

    model: str = "resnet18"
    model_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 18
    batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.2  # peak learning rate (one-cycle, cosine) or initial (step, constant)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4  # not applied to norms and biases
    schedule: str = "onecycle"
    warmup: float = 0.25  # one-cycle: fraction of steps rising; cosine: epochs of linear warm-up
    lr_decay: float = 0.9  # step schedule: multiply by this every `decay_every` epochs (seed 004)
    decay_every: int = 1
    label_smoothing: float = 0.1  # as seed 004
    ema: float = 0.0  # decay of an exponential moving average of weights per step; 0 = off
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    snapshots: int = 5  # keep the weights of the K best epochs (seed 004's snapshot ensemble)
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    channels_last: bool = True  # used on CUDA only
    compile: bool = False  # torch.compile the model for training
    grad_clip: float = 0.0  # clip the gradient norm to this; 0 = off
    train_limit: int = 0  # use only this many training images (0 = all): smoke tests, search
    val_limit: int = 0  # evaluate on this many validation images (0 = all)
    eval_batch_size: int = 1000

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if isinstance(self.augment, dict):  # built from JSON
            object.__setattr__(self, "augment", AugmentConfig(**self.augment))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        """Rebuild from `config.json`, ignoring fields a newer version may have added."""
        known = {f.name for f in dataclasses.fields(cls)}
        aug_known = {f.name for f in dataclasses.fields(AugmentConfig)}
        obj = {k: v for k, v in obj.items() if k in known}
        aug = {k: v for k, v in dict(obj.get("augment") or {}).items() if k in aug_known}
        return cls(**{**obj, "augment": AugmentConfig(**aug)})

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)
