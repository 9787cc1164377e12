"""The five reports' published Tiny ImageNet results, for the Models page beside our runs.

Figures are validation accuracies as fractions, copied from the five reports
(`tinyviz.literature`: their titles and authors); `None` where a report gives none
("Scaling of Inception Layers" reports no accuracy; most report no top-5). Where a
report gives an error rate, the accuracy is 1 - error. `family` is the tinyviz model name the
row corresponds to, or "transfer" for ImageNet-pretrained networks, which compare with our
transfer models (`tv_resnet50`, `effnet_lite0`). The conditions differ from ours (framework,
epochs, augmentation, ensembles, 10-crop testing), so `notes` says how each was obtained.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import literature

TRANSFER = "transfer"


@dataclass(frozen=True)
class Reference:
    """One published result; `seed` is the report's key in `literature.REPORTS`."""

    seed: str
    model: str
    family: str
    val_top1: float | None
    val_top5: float | None
    notes: str

    @property
    def report(self) -> literature.Report:
        return literature.report(self.seed)

    @property
    def citation(self) -> str:
        """The report's title, author and kind, as the Models table shows it."""
        return self.report.full


_001_RECIPE = "Keras, SGD lr 0.01, batch 100, 40 epochs; single model"
_003_RECIPE = "TensorFlow, Adam lr 1e-4; single model"

REFERENCES: tuple[Reference, ...] = (
    Reference(
        "000",
        "VGG-like (BN)",
        "vgg_bn",
        0.3453,
        None,
        "Keras, Adam; single model; val loss 2.50",
    ),
    Reference(
        "000",
        "Inception-v3-like",
        "inception_v3_like",
        0.4071,
        None,
        "Keras, Adam; single model",
    ),
    Reference(
        "001", "Logistic regression", "logreg", 0.062, 0.176, f"{_001_RECIPE}; val loss 4.80"
    ),
    Reference(
        "001",
        "Fully connected (1 hidden layer)",
        "mlp",
        0.078,
        0.221,
        f"{_001_RECIPE}; val loss 4.60",
    ),
    Reference("001", "Simple CNN", "simple_cnn", 0.219, 0.456, f"{_001_RECIPE}; val loss 4.39"),
    Reference("001", "VGG-like", "vgg_like", 0.245, 0.488, f"{_001_RECIPE}; val loss 3.98"),
    Reference(
        "002",
        "Reduced GoogLeNet",
        "googlenet_like",
        None,
        None,
        "no accuracy figure given in the report",
    ),
    Reference(
        "003",
        "Model 1: conv32, max pool, fc1024",
        "simple_cnn",
        0.2207,
        None,
        f"{_003_RECIPE}; train 40.84%; 31.7M params; 9 min 12 s",
    ),
    Reference(
        "003",
        "Model 2: two convs",
        "simple_cnn",
        0.2540,
        None,
        f"{_003_RECIPE}; 13.1M params",
    ),
    Reference(
        "003",
        "Model 3: 5 VGG blocks with BN",
        "vgg_bn",
        0.3954,
        None,
        f"{_003_RECIPE}; 15.1M params; 50 min 54 s",
    ),
    Reference(
        "003",
        "Model 4: 5 convs, BN, dropout",
        "vgg_bn",
        0.4240,
        None,
        f"{_003_RECIPE}; 18.4M params; 37 min 26 s",
    ),
    Reference(
        "003",
        "Model 5: ResNet50 transfer",
        TRANSFER,
        0.5513,
        None,
        f"{_003_RECIPE}; ImageNet-pretrained; 25.9M params; 55 min 20 s",
    ),
    Reference(
        "003",
        "Model 6: ResNet101 transfer",
        TRANSFER,
        0.5512,
        None,
        f"{_003_RECIPE}; ImageNet-pretrained; 45.0M params; 1 h 31 min",
    ),
    Reference(
        "004",
        "Inception-v3-like, Baseline",
        "inception_v3_like",
        0.485,
        None,
        "TensorFlow, one K80; from scratch; single model (val error 51.5%)",
    ),
    Reference(
        "004",
        "Inception-v3-like, Baseline ensemble",
        "inception_v3_like",
        0.522,
        None,
        "snapshot ensemble of the best 9 (val error 47.8%; test error 52.3%)",
    ),
    Reference(
        "004",
        "Inception-v3-like, Regularized",
        "inception_v3_like",
        0.461,
        None,
        'from scratch, the report\'s "Regularized" variant; single model',
    ),
    Reference(
        "004",
        "Inception-v3-like, Regularized ensemble",
        "inception_v3_like",
        0.468,
        None,
        "snapshot ensemble",
    ),
    Reference(
        "004",
        "Inception-v3 transfer, vanilla",
        TRANSFER,
        0.747,
        None,
        "ImageNet Inception-v3, frozen features + linear; single model (test 66.8%)",
    ),
    Reference(
        "004",
        "Inception-v3 transfer, v2",
        TRANSFER,
        0.761,
        None,
        "ImageNet Inception-v3; dropout + 10-crop testing",
    ),
    Reference(
        "004",
        "Inception-v3 transfer, v3",
        TRANSFER,
        0.767,
        None,
        "ImageNet Inception-v3; augmentation + 10-crop testing (test 69.1%)",
    ),
)
