"""A generated data set in Tiny ImageNet's official layout, small enough for unit tests.

Each class has its own colour and stripe direction plus noise, so a model can learn it and a
test can tell a trained model from an untrained one.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

WORDS = [
    "goldfish, Carassius auratus",
    "tabby, tabby cat",
    "sports car, sport car",
    "convertible",
    "school bus",
    "teapot",
    "banana",
    "pizza, pizza pie",
]


def wnid(k: int) -> str:
    return f"n{10000000 + k:08d}"


def class_image(k: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    hue = np.array([(k * 97) % 256, (k * 53 + 80) % 256, (k * 31 + 160) % 256], np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = np.sin((xx if k % 2 else yy) * (0.3 + 0.15 * (k % 3)) + rng.uniform(0, 6.28))
    img = hue[None, None, :] * (0.6 + 0.3 * stripes[..., None])
    img += rng.normal(0, 18, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(arr: np.ndarray, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if mode == "L":
        img = img.convert("L")
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_files(
    classes: int = 4,
    train_per_class: int = 24,
    val_per_class: int = 6,
    seed: int = 0,
    corrupt: int = 0,
) -> dict[str, bytes]:
    """The data set as {relative path: bytes}; `corrupt` training images are garbage bytes."""
    rng = np.random.default_rng(seed)
    files: dict[str, bytes] = {}
    ids = [wnid(k) for k in range(classes)]
    files["wnids.txt"] = ("\n".join(ids) + "\n").encode()
    words = [f"{w}\t{WORDS[k % len(WORDS)]}" for k, w in enumerate(ids)]
    files["words.txt"] = ("n00000001\tentity\n" + "\n".join(words) + "\n").encode()
    for k, w in enumerate(ids):
        boxes = []
        for i in range(train_per_class):
            name = f"{w}_{i}.JPEG"
            mode = "L" if i == 1 else "RGB"  # a grayscale image, as the real set has
            files[f"train/{w}/images/{name}"] = jpeg(class_image(k, rng), mode)
            boxes.append(f"{name}\t0\t0\t63\t63")
        files[f"train/{w}/{w}_boxes.txt"] = ("\n".join(boxes) + "\n").encode()
    ann, v = [], 0
    for _ in range(val_per_class):
        for k, w in enumerate(ids):
            files[f"val/images/val_{v}.JPEG"] = jpeg(class_image(k, rng))
            ann.append(f"val_{v}.JPEG\t{w}\t0\t0\t63\t63")
            v += 1
    files["val/val_annotations.txt"] = ("\n".join(ann) + "\n").encode()
    for i in range(corrupt):
        files[f"train/{ids[0]}/images/{ids[0]}_{i + 2}.JPEG"] = b"\xff\xd8 not really a jpeg"
    return files


def write_folder(root: Path, files: dict[str, bytes]) -> Path:
    top = Path(root) / "tiny-imagenet-200"
    for rel, data in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return top


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for rel, data in files.items():
            compress = zipfile.ZIP_STORED if rel.endswith(".JPEG") else zipfile.ZIP_DEFLATED
            zf.writestr(f"tiny-imagenet-200/{rel}", data, compress_type=compress)
    return path


# ------------------------------------------------------- your own data (issue 17)

FOLDER_CLASSES = ("apple", "bicycle", "cloud", "daisy", "elephant")


def folder_image(k: int, i: int, rng: np.random.Generator) -> tuple[str, bytes]:
    """One image of class `k` as (file name, bytes), the formats and sizes varying with `i`:
    JPEG 64 x 48, PNG 40 x 40, grayscale JPEG 100 x 80, RGBA PNG 50 x 70 (a photo-like mix)."""
    kind = i % 4
    w, h = ((64, 48), (40, 40), (100, 80), (50, 70))[kind]
    arr = class_image(k, rng, max(w, h))[:h, :w]
    buf = io.BytesIO()
    if kind == 0:
        Image.fromarray(arr).save(buf, format="JPEG", quality=90)
        return f"img_{i}.jpg", buf.getvalue()
    if kind == 1:
        Image.fromarray(arr).save(buf, format="PNG")
        return f"img_{i}.png", buf.getvalue()
    if kind == 2:
        Image.fromarray(arr).convert("L").save(buf, format="JPEG", quality=90)
        return f"IMG_{i}.JPEG", buf.getvalue()
    rgba = np.dstack([arr, np.full((h, w), 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return f"img_{i}.png", buf.getvalue()


def make_image_folder(
    root: Path,
    *,
    split: bool = True,
    classes: int = 5,
    train_per_class: int = 12,
    val_per_class: int = 4,
    seed: int = 0,
) -> Path:
    """Your own data set in class folders: `root/train/<class>/`, `root/val/<class>/`
    (`split=True`), or one `root/<class>/` with all images (`split=False`)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for k, name in enumerate(FOLDER_CLASSES[:classes]):
        parts = [("train", train_per_class), ("val", val_per_class)] if split else [(".", 0)]
        for part, n in parts:
            n = n or train_per_class + val_per_class
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                file, data = folder_image(k, i, rng)
                (folder / file).write_bytes(data)
    return root
