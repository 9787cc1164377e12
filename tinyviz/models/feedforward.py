"""Fixed-size classifiers: an optional conv trunk, flatten, fully connected layers.

logreg, mlp, simple_cnn and the VGG-style models of the seed projects all have this shape;
they differ only in the trunk configuration and the hidden widths. The trunk is written as a
VGG-style config (torchvision's `make_layers`): an int is a 3x3 conv with that many
channels, "M" a 2x2 max pool.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from tinyviz.models.base import TinyvizModel
from tinyviz.models.layers import ConvBNReLU
from tinyviz.models.preprocess import make_normalize

TrunkConfig = Sequence[int | str]


def conv_trunk(config: TrunkConfig, bn: bool) -> nn.Sequential:
    """Build `conv1, conv2, pool1, ...` from a VGG-style config."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    channels, convs, pools = 3, 0, 0
    for item in config:
        if item == "M":
            pools += 1
            layers[f"pool{pools}"] = nn.MaxPool2d(2)
        else:
            convs += 1
            layers[f"conv{convs}"] = ConvBNReLU(channels, int(item), bn=bn)
            channels = int(item)
    return nn.Sequential(layers)


def conv_places(config: TrunkConfig) -> dict[str, tuple[int, int]]:
    """`{"features.convK": (block, conv in block)}`, blocks ending at each max pool."""
    places, block, conv, k = {}, 1, 0, 0
    for item in config:
        if item == "M":
            block, conv = block + 1, 0
        else:
            k, conv = k + 1, conv + 1
            places[f"features.conv{k}"] = (block, conv)
    return places


def trunk_output_dim(config: TrunkConfig, input_size: int = 64) -> int:
    """Flattened size of the trunk's output for a square `input_size` image."""
    convs = [int(c) for c in config if c != "M"]
    side = input_size // 2 ** sum(1 for c in config if c == "M")
    return (convs[-1] if convs else 3) * side * side


def hidden_layers(in_dim: int, widths: Sequence[int], dropout: float) -> nn.Sequential:
    """fc -> ReLU blocks, with dropout between them (the head applies the last dropout)."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i, width in enumerate(widths, start=1):
        if i > 1:
            layers[f"drop{i - 1}"] = nn.Dropout(dropout)
        layers[f"fc{i}"] = nn.Linear(in_dim, width)
        layers[f"relu{i}"] = nn.ReLU(inplace=False)
        in_dim = width
    return nn.Sequential(layers)


class FeedForwardNet(TinyvizModel):
    any_input_size = False

    """normalize -> trunk -> flatten -> hidden fc layers -> dropout -> fc.

    `forward_features` is the last hidden layer after its ReLU (the flattened normalised
    pixels when there is no hidden layer, as in logistic regression).
    """

    def __init__(
        self,
        num_classes: int = 200,
        *,
        trunk: TrunkConfig = (),
        bn: bool = False,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        norm: str = "channel",
        input_size: int = 64,
    ) -> None:
        super().__init__()
        self.normalize = make_normalize(norm, input_size)
        self.features = conv_trunk(trunk, bn)
        self.classifier = hidden_layers(trunk_output_dim(trunk, input_size), hidden, dropout)
        self.dropout = nn.Dropout(dropout) if hidden else nn.Identity()
        last = hidden[-1] if hidden else trunk_output_dim(trunk, input_size)
        self.fc = nn.Linear(last, num_classes)
        convs = [n for n, m in self.features.named_children() if isinstance(m, ConvBNReLU)]
        self.channel_layers = tuple(f"features.{n}" for n in convs)
        self.gradcam_layer = self.channel_layers[-1] if convs else None
        self._conv_places = conv_places(trunk)

    def layer_title(self, name: str) -> str:
        """VGG-style: "Block b, conv j", a block being the convs before a max pool."""
        if name in self._conv_places:
            block, conv = self._conv_places[name]
            return f"Block {block}, conv {conv}"
        return super().layer_title(name)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))
        return self.classifier(torch.flatten(x, 1))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))
