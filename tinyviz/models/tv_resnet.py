"""ImageNet-pretrained ResNets from torchvision, fine-tuned (or probed) on Tiny ImageNet.

The 64x64 images are upsampled inside the model to `resolution` (seed 004 lets the
pretrained network see images near its own scale) and normalised with ImageNet's statistics.
"""

from __future__ import annotations

from typing import Any

from tinyviz.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, Normalize, Resize
from tinyviz.models.pretrained import load_backbone, torchvision_state_dict
from tinyviz.models.registry import register_model
from tinyviz.models.resnet import Block, ResNet
from tinyviz.models.resnet_blocks import BasicBlock, Bottleneck

SOURCE = "ImageNet-pretrained (torchvision)"


def imagenet_resnet(
    block: Block,
    layers: tuple[int, int, int, int],
    weights: Any,
    num_classes: int,
    pretrained: bool,
    *,
    freeze: bool = False,
    resolution: int = 160,
    **options: Any,
) -> ResNet:
    """The ResNet with torchvision's stem; `freeze=True` trains only the head (seed 004)."""
    model = ResNet(
        block,
        layers,
        num_classes,
        stem="imagenet",
        resize=Resize(resolution),
        normalize=Normalize(IMAGENET_MEAN, IMAGENET_STD, fixed=True),
        **options,
    )
    if pretrained:
        load_backbone(model, torchvision_state_dict(weights), head="fc")
    if freeze:
        model.freeze_backbone()
    return model


@register_model(family="resnet", source=SOURCE)
def tv_resnet18(num_classes: int = 200, pretrained: bool = True, **options: Any) -> ResNet:
    """torchvision's ImageNet ResNet-18 (IMAGENET1K_V1) with a new head; input resized inside."""
    from torchvision.models import ResNet18_Weights  # here: importing torchvision takes seconds

    weights = ResNet18_Weights.IMAGENET1K_V1
    return imagenet_resnet(BasicBlock, (2, 2, 2, 2), weights, num_classes, pretrained, **options)


@register_model(family="resnet", source=SOURCE)
def tv_resnet50(num_classes: int = 200, pretrained: bool = True, **options: Any) -> ResNet:
    """torchvision's ImageNet ResNet-50 (IMAGENET1K_V2) with a new head; input resized inside."""
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V2
    return imagenet_resnet(Bottleneck, (3, 4, 6, 3), weights, num_classes, pretrained, **options)
