"""ResNets for 64x64 inputs (3x3 stride-1 stem, no max pool) and the ImageNet stem variant."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.preprocess import Normalize, make_normalize
from tinyviz.models.registry import register_model
from tinyviz.models.resnet_blocks import BasicBlock, Bottleneck

Block = type[BasicBlock] | type[Bottleneck]


class ResNet(TinyvizModel):
    """resize -> normalize -> stem -> layer1..4 -> global average pool -> dropout -> fc.

    `stem="tiny"` keeps the full 64x64 resolution into layer1 (a 7x7/2 conv and a max pool
    would leave 16x16 maps); `stem="imagenet"` is torchvision's, for ImageNet weights.
    """

    channel_layers = ("layer1", "layer2", "layer3", "layer4")
    gradcam_layer = "layer4"

    def __init__(
        self,
        block: Block,
        layers: tuple[int, int, int, int],
        num_classes: int = 200,
        *,
        normalize: Normalize | None = None,
        resize: nn.Module | None = None,
        stem: str = "tiny",
        width: int = 64,
        dropout: float = 0.0,
        zero_init_residual: bool = True,
    ) -> None:
        super().__init__()
        self.resize = resize or nn.Identity()
        self.normalize = normalize or make_normalize()
        self._make_stem(stem, width)
        self.in_planes = width
        self.layer1 = self._make_layer(block, width, layers[0], stride=1)
        self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
        self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
        self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def layer_title(self, name: str) -> str:
        """`layerK` is stage K; its output is that of the stage's last block."""
        if name in self.channel_layers:
            return f"Stage {name[-1]}, block {len(getattr(self, name))}"
        return super().layer_title(name)

    def _make_stem(self, stem: str, width: int) -> None:
        if stem not in ("tiny", "imagenet"):
            raise ValueError(f"stem must be 'tiny' or 'imagenet', got {stem!r}")
        tiny = stem == "tiny"
        kernel, stride = (3, 1) if tiny else (7, 2)
        self.conv1 = nn.Conv2d(3, width, kernel, stride, padding=kernel // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=False)
        self.maxpool = nn.Identity() if tiny else nn.MaxPool2d(3, stride=2, padding=1)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [block(self.in_planes, planes, stride)]
        self.in_planes = planes * block.expansion
        layers += [block(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """torchvision's init; a zero last-BN gamma starts every block as the identity."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(self.resize(x))
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))


def tiny_resnet(
    block: Block, layers: tuple[int, int, int, int], num_classes: int, norm: str, **options: Any
) -> ResNet:
    return ResNet(block, layers, num_classes, normalize=make_normalize(norm), **options)


@register_model(family="resnet", source="003, 004")
def resnet18(num_classes: int = 200, norm: str = "channel", **options: Any) -> ResNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]) with a 3x3 stride-1 stem for 64x64 inputs."""
    return tiny_resnet(BasicBlock, (2, 2, 2, 2), num_classes, norm, **options)


@register_model(family="resnet", source="003, 004")
def resnet34(num_classes: int = 200, norm: str = "channel", **options: Any) -> ResNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3]) with a 3x3 stride-1 stem for 64x64 inputs."""
    return tiny_resnet(BasicBlock, (3, 4, 6, 3), num_classes, norm, **options)


@register_model(family="resnet", source="003, 004")
def resnet50(num_classes: int = 200, norm: str = "channel", **options: Any) -> ResNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]) with a 3x3 stride-1 stem for 64x64 inputs."""
    return tiny_resnet(Bottleneck, (3, 4, 6, 3), num_classes, norm, **options)
