"""Tampered run folders: every way a downloaded or hand-edited run can be wrong.

Each case turns a copy of a good run folder into a bad one. What must happen is the same for
all: the run is listed as broken with a one-line reason (or, where only an optional part is
bad, that part is refused when used), nothing hangs, nothing outside the folder is read, and
the rest of the app goes on. Used by tests/test_run_folder.py and bench/hardening.py.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

Case = Callable[[Path], None]


def _json(run: Path, name: str, change: Callable[[dict], object]) -> None:
    path = run / name
    obj = json.loads(path.read_text())
    path.write_text(json.dumps(change(obj)))


def _set(keys: str, value) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        *parents, last = keys.split(".")
        d = obj
        for k in parents:
            d = d[k]
        d[last] = value
        return obj

    return change


def _drop(keys: str) -> Callable[[dict], dict]:
    def change(obj: dict) -> dict:
        *parents, last = keys.split(".")
        d = obj
        for k in parents:
            d = d[k]
        del d[last]
        return obj

    return change


def _metrics_line(line: str) -> Case:
    def case(run: Path) -> None:
        with open(run / "metrics.jsonl", "a") as f:
            f.write(line + "\n")

    return case


def _metrics_field(key: str, value) -> Case:
    def case(run: Path) -> None:
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        rows[0][key] = value
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return case


def _text(name: str, text: str) -> Case:
    def case(run: Path) -> None:
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)

    return case


def _index(entries) -> Case:
    return _text("snapshots/index.json", json.dumps(entries))


def _replace_weights(make: Callable[[Path], None]) -> Case:
    def case(run: Path) -> None:
        (run / "model.safetensors").unlink()
        make(run / "model.safetensors")

    return case


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _link_outside(run: Path) -> None:
    """Real weights, but the file is a link to a copy outside the run folder."""
    outside = run.parent / f"{run.name}-outside.safetensors"
    shutil.move(run / "model.safetensors", outside)
    (run / "model.safetensors").symlink_to(outside)


def _int_weights(run: Path) -> None:
    import torch

    from tinyviz.runs import load_weights, save_weights

    tensors = load_weights(run / "model.safetensors")
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.ndim > 1)
    tensors[key] = tensors[key].to(torch.int64)
    save_weights(run / "model.safetensors", tensors)


def _nan_weights(run: Path) -> None:
    from tinyviz.runs import load_weights, save_weights

    tensors = load_weights(run / "model.safetensors")
    key = next(k for k, t in tensors.items() if t.is_floating_point() and t.ndim > 1)
    tensors[key].view(-1)[0] = float("nan")
    save_weights(run / "model.safetensors", tensors)


def _config_as(text: str) -> Case:
    return _text("config.json", text)


def _config(change) -> Case:
    return lambda run: _json(run, "config.json", change)


def _classes(n: int) -> Callable[[dict], dict]:
    def change(c: dict) -> dict:
        c["classes"] = {
            "wnids": [f"n{i:08d}" for i in range(n)],
            "names": [f"class {i}" for i in range(n)],
        }
        return c

    return change


def _evals_of(n: int) -> Case:
    entry = {"split": "val", "tta": "none", "ensemble": 1, "top1": 0.5, "top5": 0.9}
    return _text("evals.json", json.dumps([{**entry, "loss": 1.0, "n": 10}] * n))


def _sparse(name: str, size: int) -> Case:
    """A file of `size` bytes that takes no disk (a hole), as a huge log would be."""

    def case(run: Path) -> None:
        with open(run / name, "r+b") as f:
            f.truncate(size)

    return case


def _loop(name: str) -> Case:
    def case(run: Path) -> None:
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(run / name)

    return case


def _self_loop(run: Path) -> None:
    shutil.rmtree(run)
    run.symlink_to(run)


def _file_for_folder(name: str) -> Case:
    def case(run: Path) -> None:
        if (run / name).is_dir():
            shutil.rmtree(run / name)
        (run / name).write_text("a file where a folder should be")

    return case


# name -> (how to break it, where it must be refused: "scan" = listed as broken (the weights'
#          header is checked then); "load" = listed, but its weights are refused when loaded)
CASES: dict[str, tuple[Case, str]] = {
    "config is a JSON list": (_config_as("[1, 2, 3]"), "scan"),
    "config is not JSON": (_config_as("{model: resnet18"), "scan"),
    "config is empty": (_config_as(""), "scan"),
    "config is 40 MB": (_config_as('{"x": "' + "a" * 40_000_000 + '"}'), "scan"),
    "config nested 100,000 deep": (_config_as("[" * 100_000 + "]" * 100_000), "scan"),
    "model is a string": (_config(_set("model", "logreg")), "scan"),
    "model name is a number": (_config(_set("model.name", 18)), "scan"),
    "model is unknown": (_config(_set("model.name", "alexnet9000")), "scan"),
    "model option unknown": (_config(_set("model.options", {"bogus": 1})), "scan"),
    "model options a list": (_config(_set("model.options", [1])), "scan"),
    "wnids is a number": (_config(_set("classes.wnids", 200)), "scan"),
    "wnids and names differ in length": (_config(_set("classes.names", ["a"])), "scan"),
    "a wnid twice": (
        _config(
            lambda c: _set(
                "classes.wnids", [c["classes"]["wnids"][0]] * len(c["classes"]["wnids"])
            )(c)
        ),
        "scan",
    ),
    "classes missing": (_config(_drop("classes")), "scan"),
    "train missing": (_config(_drop("train")), "scan"),
    "train epochs a string": (_config(_set("train.epochs", "6")), "scan"),
    "train lr negative": (_config(_set("train.lr", -1.0)), "scan"),
    "train optimizer unknown": (_config(_set("train.optimizer", "lion")), "scan"),
    "train precision fp16": (_config(_set("train.precision", "fp16")), "scan"),
    "augment not an object": (_config(_set("train.augment", 5)), "scan"),
    "env not an object": (_config(_set("env", "gpu")), "scan"),
    "config is a FIFO": (
        lambda run: ((run / "config.json").unlink(), os.mkfifo(run / "config.json")),
        "scan",
    ),
    "config links to /etc/passwd": (
        lambda run: (
            (run / "config.json").unlink(),
            (run / "config.json").symlink_to("/etc/passwd"),
        ),
        "scan",
    ),
    "metrics line is a number": (_metrics_line("5"), "scan"),
    "metrics line is a list": (_metrics_line("[1, 2]"), "scan"),
    "metrics val_top1 'high'": (_metrics_field("val_top1", "high"), "scan"),
    "metrics epoch missing": (_metrics_field("epoch", None), "scan"),
    "metrics is a directory": (
        lambda run: ((run / "metrics.jsonl").unlink(), (run / "metrics.jsonl").mkdir()),
        "scan",
    ),
    "evals not JSON": (_text("evals.json", "[{"), "scan"),
    "evals a dict": (_text("evals.json", '{"top1": 1}'), "scan"),
    "evals top1 a string": (
        _text(
            "evals.json",
            json.dumps(
                [
                    {
                        "split": "val",
                        "tta": "none",
                        "ensemble": 1,
                        "top1": "0.9",
                        "top5": 1.0,
                        "loss": 0.1,
                        "n": 10,
                    }
                ]
            ),
        ),
        "scan",
    ),
    "snapshot index not JSON": (_text("snapshots/index.json", "nope"), "scan"),
    "snapshot index to /dev/zero": (
        _index([{"epoch": 1, "top1": 0.5, "file": "../../../../dev/zero"}]),
        "scan",
    ),
    "snapshot index to /etc/passwd": (
        _index([{"epoch": 1, "top1": 0.5, "file": "../etc/passwd"}]),
        "scan",
    ),
    "snapshot index absolute path": (
        _index([{"epoch": 1, "top1": 0.5, "file": "/etc/passwd"}]),
        "scan",
    ),
    "snapshot index entry a string": (_index(["epoch_001.safetensors"]), "scan"),
    "weights a FIFO": (_replace_weights(_fifo), "scan"),
    "weights link to /dev/zero": (_replace_weights(_link_zero), "scan"),
    "weights link outside the run": (_link_outside, "scan"),
    "weights a pickle": (
        _replace_weights(
            lambda p: p.write_bytes(
                b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93."
            )
        ),
        "scan",
    ),
    "weights empty": (_replace_weights(lambda p: p.write_bytes(b"")), "scan"),
    "weights header lies": (
        _replace_weights(lambda p: p.write_bytes((10**12).to_bytes(8, "little") + b"{}")),
        "scan",
    ),
    "weights as int64": (_int_weights, "load"),
    "weights hold NaN": (_nan_weights, "load"),
    # issue 19.4: each of these used to vanish from the lists without a word, or stall them
    "config names 5,000 classes": (_config(_classes(5000)), "scan"),
    "evals of 10^6 entries": (_evals_of(10**6), "scan"),
    "evals of 20,000 numbers": (_text("evals.json", json.dumps([0] * 20_000)), "scan"),
    "metrics 200 MB": (_sparse("metrics.jsonl", 200 * 10**6), "scan"),
    "config a loop of links": (_loop("config.json"), "scan"),
    "run folder a loop of links": (_self_loop, "scan"),
    "snapshots a file": (_file_for_folder("snapshots"), "scan"),
    "analysis a file": (_file_for_folder("analysis"), "scan"),
    "epochs a file": (_file_for_folder("epochs"), "scan"),
}


# ------------------------------------------------ stored analysis files (issue 19.3)


def _compact(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Rewrite a stored analysis folder's compact.npz with `change` applied to its arrays."""

    def case(folder: Path) -> None:
        import numpy as np

        with np.load(folder / "compact.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        change(arrays)
        np.savez_compressed(folder / "compact.npz", **arrays)
        for exact in ("logp.npy", "features.npy"):  # the compact arrays are what is read
            (folder / exact).unlink(missing_ok=True)

    return case


def _set_array(name: str, make) -> Callable[[Path], None]:
    def change(arrays: dict) -> None:
        arrays[name] = make(arrays[name])

    return _compact(change)


def _truncate(folder: Path) -> None:
    data = (folder / "compact.npz").read_bytes()
    (folder / "compact.npz").write_bytes(data[: len(data) // 2])


def _nan_at_0(a):
    a = a.astype("float32").copy()
    a.flat[0] = float("nan")
    return a


def _inf_at_0(a):
    a = a.astype("float32").copy()
    a.flat[0] = float("inf")
    return a


def _exact_nan(folder: Path) -> None:
    import numpy as np

    features = np.load(folder / "features.npy")
    features.flat[3] = np.nan
    np.save(folder / "features.npy", features)


def _exact_short(folder: Path) -> None:
    import numpy as np

    np.save(folder / "logp.npy", np.load(folder / "logp.npy")[:-1])


def _meta_classes(value) -> Callable[[Path], None]:
    return lambda folder: _json(folder, "meta.json", _set("classes", value))


# name -> how to break a complete analysis folder (with its exact arrays); every one must
# make the folder count as missing, with a one-line reason (`analysis.problem`)
ANALYSIS_CASES: dict[str, Callable[[Path], None]] = {
    "compact.npz truncated": _truncate,
    "compact.npz empty": lambda folder: (folder / "compact.npz").write_bytes(b""),
    "compact.npz not a zip": lambda folder: (folder / "compact.npz").write_text("hello"),
    "preds of half the images": _set_array("preds", lambda a: a[: len(a) // 2]),
    "labels of half the images": _set_array("labels", lambda a: a[: len(a) // 2]),
    "pca holds NaN": _set_array("pca", _nan_at_0),
    "pca holds inf": _set_array("pca", _inf_at_0),
    "top_logp holds NaN": _set_array("top_logp", _nan_at_0),
    "mean holds inf": _set_array("mean", _inf_at_0),
    "components of another width": _set_array("components", lambda a: a[:, :-1]),
    "preds out of range": _set_array("preds", lambda a: a * 0 + 5000),
    "labels negative": _set_array("labels", lambda a: a * 0 - 1),
    "top_classes as floats": _set_array("top_classes", lambda a: a.astype("float32")),
    "channel rows out of range": _set_array("rows_0", lambda a: a * 0 + 30000),
    "channel values hold NaN": _set_array("values_0", _nan_at_0),
    "pca missing": _compact(lambda arrays: arrays.pop("pca")),
    "meta classes a string": _meta_classes("many"),
    "meta classes 5,000": _meta_classes(5000),
    "exact features hold NaN": _exact_nan,
    "exact logp one row short": _exact_short,
}
