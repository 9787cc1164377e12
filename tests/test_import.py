"""`tinyviz import`: models trained elsewhere become run folders that every page reads.

Each route round-trips with a model built here (torchvision, timm, a class in a temporary
file, ONNX from `torch.onnx.export`, Keras 3 saved as .keras): the run, loaded back from its
folder, gives the original's logits on the same images. Refusals are one line, and a
pickle that would run code runs nothing.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from tinyviz.cli import main
from tinyviz.errors import CheckpointError, ConfigError
from tinyviz.models.external import ExternalModel
from tinyviz.models.preprocess import IMAGENET_MEAN, IMAGENET_STD
from tinyviz.runs import RunFolder, load_model, open_run
from tinyviz.runs.importer import ImportRequest, import_model, near_chance

TINY_NET = '''
import torch
from torch import nn


class Net(nn.Module):
    """A student's small CNN: two conv stages, global pooling, a linear head."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.classifier(self.pool(self.stage2(self.stage1(x))).flatten(1))


def make_net(num_classes=4):
    return Net(num_classes)
'''


def images(n: int = 3, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def normalized(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def tiny_net(tmp_path: Path, seed: int = 0) -> tuple[Path, nn.Module]:
    """The student's model file, and the model built from it with random weights."""
    code = tmp_path / "mynet.py"
    code.write_text(TINY_NET)
    namespace: dict = {}
    exec(compile(TINY_NET, str(code), "exec"), namespace)
    torch.manual_seed(seed)
    net = namespace["Net"](4).eval()
    with torch.no_grad():  # BatchNorm statistics that are not the defaults
        net.stage1[1].running_mean.uniform_(-0.2, 0.2)
        net.stage1[1].running_var.uniform_(0.5, 2.0)
    return code, net


def imported(tmp_path, data, weights, arch=None, **kw) -> Path:
    return import_model(ImportRequest(Path(weights), tmp_path / "runs" / "mine", arch, **kw), data)


# ------------------------------------------------------------------------ the routes


def test_a_torchvision_state_dict_round_trips_in_the_given_class_order(tmp_path, tiny_data):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=4).eval()
    torch.save(net.state_dict(), tmp_path / "mine.pt")
    wnids = list(tiny_data.classes.wnids)
    (tmp_path / "classes.txt").write_text("\n".join(reversed(wnids)) + "\n")
    run_dir = imported(
        tmp_path, tiny_data, tmp_path / "mine.pt", "torchvision:resnet18",
        classes=tmp_path / "classes.txt",
    )  # fmt: skip
    run = open_run(run_dir)
    assert run.imported.route == "torchvision" and run.model_name == "torchvision:resnet18"
    assert run.config.model.source == "imported from mine.pt"
    model = load_model(run)
    x = images()
    with torch.no_grad():
        want = net(normalized(x)).flip(1)  # output 0 is the data set's last class
        assert torch.allclose(model(x), want, atol=1e-4)
        assert torch.allclose(model.forward_head(model.forward_features(x)), want, atol=1e-4)
    assert model.channel_layers[-4:] == ("net.layer1", "net.layer2", "net.layer3", "net.layer4")
    assert model.gradcam_layer == "net.layer4" and model.head_modules == ("net.fc",)
    from tinyviz.explain.contrastive import final_linear

    assert final_linear(model).name == "net.fc"  # the head explains the logits exactly


def test_a_timm_model_takes_timm_s_own_preprocessing(tmp_path, tiny_data):
    import timm
    from timm.data import resolve_data_config

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", pretrained=False, num_classes=4).eval()
    save_file(net.state_dict(), tmp_path / "mine.safetensors")
    run = open_run(imported(tmp_path, tiny_data, tmp_path / "mine.safetensors", "timm:test_resnet"))
    cfg = resolve_data_config({}, model=net)
    prep = run.imported.preprocess
    assert prep.size == cfg["input_size"][-1] and prep.mean == tuple(cfg["mean"])
    x = images()
    big = torch.nn.functional.interpolate(x, size=(prep.size,) * 2, mode=prep.interpolation)
    with torch.no_grad():
        want = net(normalized(big, cfg["mean"], cfg["std"]))
        assert torch.allclose(load_model(run)(x), want, atol=1e-4)


def test_user_code_from_a_file_and_a_factory_round_trips(tmp_path, tiny_data):
    code, net = tiny_net(tmp_path)
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "mine.pth.tar")
    run_dir = imported(
        tmp_path, tiny_data, tmp_path / "mine.pth.tar", f"{code}:make_net", normalize="tf"
    )
    model = load_model(run_dir)
    x = images()
    with torch.no_grad():
        assert torch.allclose(model(x), net((x - 0.5) / 0.5), atol=1e-4)
    assert model.channel_layers == ("net.stage1", "net.stage2")
    assert model.layer_title("net.stage2") == "Layer 2 of 2: stage2"
    code.write_text(TINY_NET + "\nprint('changed')\n")  # the code that would run changed
    with pytest.raises(CheckpointError, match="changed since the model was imported"):
        load_model(run_dir)
    code.unlink()
    with pytest.raises(CheckpointError, match="is gone"):
        load_model(run_dir)


def test_an_onnx_export_of_torch_becomes_a_hookable_module(tmp_path, tiny_data):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=4).eval()
    x = images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, (x,), str(tmp_path / "mine.onnx"), dynamo=False, opset_version=17,
            input_names=["input"], dynamic_axes={"input": {0: "batch"}},
        )  # fmt: skip
    run_dir = imported(tmp_path, tiny_data, tmp_path / "mine.onnx", normalize="imagenet")
    assert (run_dir / "model.onnx").is_file()
    model = load_model(run_dir)
    with torch.no_grad():
        assert torch.allclose(model(x), net(normalized(x)), atol=1e-4)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20 and len(model.channel_layers) >= 4
    assert isinstance(dict(model.named_modules())[model.head_modules[0]], nn.Linear)


def test_a_keras_model_is_explained_channels_first(tmp_path, tiny_data):
    from tinyviz.models import keras_net

    keras = keras_net.keras()  # Keras 3 on the torch backend, chosen before its first import
    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, activation="relu", padding="same", name="c1")(inp)
    h = keras.layers.MaxPooling2D(name="p1")(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", padding="same", name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(4, activation="softmax", name="pred")(h)
    keras.Model(inp, out).save(str(tmp_path / "mine.keras"))
    run_dir = imported(tmp_path, tiny_data, tmp_path / "mine.keras")
    run = open_run(run_dir)
    assert run.imported.preprocess.layout == "nhwc" and run.imported.preprocess.size == 32
    model = load_model(run)
    original = keras_net.load(tmp_path / "mine.keras")
    x = images()
    small = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear")
    with torch.no_grad():
        want = original(small.permute(0, 2, 3, 1))
        got = model(x)
        assert torch.allclose(got.softmax(1), want, atol=1e-4)
    assert model.channel_layers == ("maps.c1", "maps.c2")
    seen = []
    view = dict(model.named_modules())["maps.c2"]
    handle = view.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert seen == [(3, 16, 16, 16)]  # NCHW: 16 channels of 16 x 16


def test_a_keras_model_that_rescales_its_input_gets_0_255_pixels(tmp_path, tiny_data):
    """The usual Keras pipeline: image_dataset_from_directory's 0-255 pixels, rescaled by
    the model's first layer. Its import feeds it 0-255 pixels without being told."""
    from tinyviz.models import keras_net

    keras = keras_net.keras()
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255, name="scale")(inp)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    keras.Model(inp, keras.layers.Dense(4, name="pred")(h)).save(str(tmp_path / "mine.keras"))
    run = open_run(imported(tmp_path, tiny_data, tmp_path / "mine.keras"))
    prep = run.imported.preprocess
    assert prep.std == (1 / 255,) * 3 and "pixels 0-255" in prep.describe()
    x = images()
    small = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear")
    with torch.no_grad():
        want = keras_net.load(tmp_path / "mine.keras")(small.permute(0, 2, 3, 1) * 255)
        assert torch.allclose(load_model(run)(x), want, atol=1e-4)


# ------------------------------------------------------------------- the containers


@pytest.mark.parametrize(
    "wrap",
    ["plain", "model", "model_state_dict", "lightning", "dataparallel", "safetensors"],
)
def test_containers_and_prefixes_are_unwrapped(tmp_path, tiny_data, wrap):
    code, net = tiny_net(tmp_path)
    sd = net.state_dict()
    name = "mine.safetensors" if wrap == "safetensors" else "mine.ckpt"
    obj = {
        "plain": sd,
        "model": {"model": sd, "optimizer": {"lr": 0.1}},
        "model_state_dict": {"model_state_dict": sd, "epoch": 2},
        "lightning": {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 9},
        "dataparallel": {f"module.{k}": v for k, v in sd.items()},
        "safetensors": None,
    }[wrap]
    if obj is None:
        save_file(sd, tmp_path / name)
    else:
        torch.save(obj, tmp_path / name)
    model = load_model(imported(tmp_path, tiny_data, tmp_path / name, f"{code}:Net"))
    x = images(2)
    with torch.no_grad():
        assert torch.allclose(model(x), net(normalized(x)), atol=1e-4)


# --------------------------------------------------------------------- refusals


def one_line(e: pytest.ExceptionInfo) -> str:
    text = str(e.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_a_pickled_whole_model_is_refused_with_how_to_save_a_state_dict(tmp_path, tiny_data):
    import torchvision

    torch.save(torchvision.models.resnet18(num_classes=4), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError) as e:
        imported(tmp_path, tiny_data, tmp_path / "whole.pt", "torchvision:resnet18")
    assert "torch.save(model.state_dict()" in one_line(e) and "pickled model" in one_line(e)
    assert not (tmp_path / "runs" / "mine").exists()


class Payload:
    """A pickle that would write a file when loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.write_text, (self.target, "pwned"))


def test_a_pickle_that_would_run_code_runs_nothing(tmp_path, tiny_data):
    target = tmp_path / "written-by-the-pickle"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"x": Payload(target)}}, f)
    torch.save({"fc.weight": Payload(target)}, tmp_path / "evil2.pth")
    for file in ("evil.pt", "evil2.pth"):
        with pytest.raises(CheckpointError) as e:
            imported(tmp_path, tiny_data, tmp_path / file, "torchvision:resnet18")
        assert "does not unpickle" in one_line(e)
    assert not target.exists()


def test_wrong_keys_and_a_wrong_head_size_are_one_line(tmp_path, tiny_data):
    import torchvision

    code, net = tiny_net(tmp_path)
    sd = dict(net.state_dict())
    del sd["stage1.0.weight"]
    sd["extra.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError) as e:
        imported(tmp_path, tiny_data, tmp_path / "keys.pt", f"{code}:Net")
    assert "stage1.0.weight" in one_line(e) and "extra.weight" in one_line(e)
    sd = dict(net.state_dict(), **{"stage2.0.weight": torch.zeros(16, 8, 5, 5)})
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError) as e:
        imported(tmp_path, tiny_data, tmp_path / "shape.pt", f"{code}:Net")
    assert "stage2.0.weight has shape (16, 8, 5, 5)" in one_line(e)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "ten.pt")
    with pytest.raises(CheckpointError) as e:
        imported(tmp_path, tiny_data, tmp_path / "ten.pt", "torchvision:resnet18")
    assert "has 10 outputs but the data set has 4 classes" in one_line(e)
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(ConfigError, match="leave out --arch"):
        imported(tmp_path, tiny_data, tmp_path / "x.onnx", "resnet18")


def test_the_cli_imports_evaluates_and_warns_near_chance(tmp_path, tiny_zip, capsys):
    code, net = tiny_net(tmp_path)
    with torch.no_grad():
        net.classifier.weight.zero_()  # every image gets the same scores: chance
    torch.save(net.state_dict(), tmp_path / "mine.pt")
    out = tmp_path / "runs" / "chance"
    args = ["import", str(tmp_path / "mine.pt"), "--arch", f"{code}:Net", "--data", str(tiny_zip)]
    assert main([*args, "--out", str(out), "--no-analysis"]) == 0
    captured = capsys.readouterr()
    assert "warning: top-1" in captured.err and "class order or preprocessing" in captured.err
    assert open_run(out).score.n == 24  # evaluated on the whole validation set
    assert main([*args, "--out", str(out)]) == 2  # never over a run
    assert "not empty" in capsys.readouterr().err
    assert near_chance(0.9, 4) == "" and near_chance(0.9, 2) == "" and near_chance(0.02, 200) == ""
    assert "(50.0% with 2 classes)" in near_chance(0.55, 2) and near_chance(0.008, 200)


def test_the_import_help_says_that_user_code_runs(capsys):
    with pytest.raises(SystemExit):
        main(["import", "--help"])
    assert "Your code RUNS" in capsys.readouterr().out


def test_an_imported_run_is_listed_and_explained_on_the_pages(tmp_path, tiny_data, monkeypatch):
    from pagetest import ok, open_page

    from tinyviz.explain import analysis
    from tinyviz.runs.evaluate import evaluate_run

    code, net = tiny_net(tmp_path)
    torch.save(net.state_dict(), tmp_path / "student.pt")
    run_dir = import_model(
        ImportRequest(tmp_path / "student.pt", tmp_path / "runs" / "student", f"{code}:Net"),
        tiny_data,
    )
    evaluate_run(run_dir, tiny_data)  # as `tinyviz import` does
    analysis.val_outputs(run_dir, tiny_data)
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_data.source))
    monkeypatch.setenv("TINYVIZ_RUNS", str(run_dir.parent))
    monkeypatch.setenv("TINYVIZ_CHECKPOINTS", str(tmp_path / "no-shipped-runs"))
    models_page = ok(open_page("pages/models.py", run_dir))
    table = models_page.dataframe[0].value
    row = table[table["run"] == "student"].iloc[0]
    assert row["source"] == "imported from student.pt" and row["model"].startswith("code:")
    how = [t.value for t in models_page.text if t.value.startswith("student: student.pt")]
    assert how == [
        "student: student.pt: code:mynet.py:Net; size as given, ImageNet normalisation, RGB, "
        "NCHW; classes in the order of class folders sorted by name"
    ]
    assert not [m for m in models_page.multiselect if (m.key or "").startswith("tv_curve_runs")]
    assert any("trained elsewhere, so no curves" in c.value for c in models_page.caption)
    # its recipe here is a placeholder (it was trained elsewhere): no preset to start from
    presets = ok(open_page("pages/train.py")).selectbox(key="tv_tr_preset").options
    assert presets and not any("student" in p for p in presets)
    recipes = ok(open_page("pages/data.py")).selectbox(key="tv_aug_recipe").options
    assert recipes == ["tinyviz defaults"]
    ok(open_page("pages/channels.py", run_dir))
    at = ok(open_page("pages/saliency.py", run_dir))
    assert at.get("imgs") or at.image, "the saliency page drew no maps"
    assert isinstance(load_model(run_dir), ExternalModel)
    assert RunFolder(run_dir).weights.is_file() and os.environ["TINYVIZ_RUNS"]


def test_the_import_page_refuses_in_one_line_and_imports_in_the_background(
    tmp_path, tiny_zip, monkeypatch
):
    from pagetest import ok, open_page

    from tinyviz.runs import import_job

    code, net = tiny_net(tmp_path)
    torch.save(net.state_dict(), tmp_path / "student.pt")
    monkeypatch.setenv("TINYVIZ_DATA", str(tiny_zip))
    monkeypatch.setenv("TINYVIZ_RUNS_DIR", str(tmp_path / "runs"))
    at = ok(open_page("pages/import_model.py"))
    at.text_input[0].input(str(tmp_path / "nothing.pt"))
    at.text_input[2].input("student")
    at = at.button[0].click().run()
    assert [e.value for e in at.error] == [f"{tmp_path / 'nothing.pt'}: no such file on the server"]
    at.text_input[0].input(str(tmp_path / "student.pt"))
    at.text_input[1].input(f"{code}:Net")
    at = ok(at.button[0].click().run())
    deadline = time.monotonic() + 120
    while import_job.status("student").state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    job = import_job.status("student")
    assert job.state == "done", job.log
    assert open_run(job.run).score.n == 24
    at = ok(at.run())
    assert any("student is a run now" in s.value for s in at.success)
    assert job.result["classes"] == 4
    with pytest.raises(ConfigError, match="exists already"):
        import_job.command(import_job.ImportForm(str(tmp_path / "student.pt"), "student", "x"))
