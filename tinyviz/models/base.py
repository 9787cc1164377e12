"""The interface every tinyviz model implements.

Training, embeddings and the explainers only rely on what is declared here: logits from
[0, 1] pixels, pooled features split from the head, and the names of the layers worth
looking at.
"""

from __future__ import annotations

import torch
from torch import nn

from tinyviz.models.preprocess import Normalize


class TinyvizModel(nn.Module):
    """Base class: `forward(x) == forward_head(forward_features(x))`.

    Subclasses set `normalize`, implement `forward_features` (pixels to pooled features) and
    `forward_head` (features to logits), and name their inspectable layers:
    `channel_layers` (dotted module names with (N, C, h, w) outputs) and `gradcam_layer`.
    `head_modules` names the modules that still train when the backbone is frozen.
    """

    channel_layers: tuple[str, ...] = ()
    gradcam_layer: str | None = None
    any_input_size: bool = True  # False where a fully connected layer fixes the input at 64x64
    head_modules: tuple[str, ...] = ("dropout", "fc")
    normalize: Normalize

    def __init__(self) -> None:
        super().__init__()
        self.backbone_frozen = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def layer_title(self, name: str) -> str:
        """A student's name for an inspectable layer ("Stage 4, block 2"), where it sits in
        the architecture; `tinyviz.models.describe` adds its resolution and channels.

        This default only counts the channel layers; families override it with their own
        stages and blocks.
        """
        if name in self.channel_layers:
            return f"Layer {self.channel_layers.index(name) + 1} of {len(self.channel_layers)}"
        return "Last feature map" if name == self.gradcam_layer else name

    def _in_head(self, name: str) -> bool:
        return any(name == h or name.startswith(h + ".") for h in self.head_modules)

    def freeze_backbone(self) -> None:
        """Linear probe: only the head trains and the backbone always runs as in eval mode.

        Frozen BatchNorm statistics (and no stochastic depth) keep the features the head
        learns from identical to the pretrained ones.
        """
        for name, param in self.named_parameters():
            param.requires_grad_(self._in_head(name))
        self.backbone_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> TinyvizModel:
        super().train(mode)
        if self.backbone_frozen:
            for name, module in self.named_modules():
                if name and not self._in_head(name):
                    module.train(False)
        return self
