"""Your own data set in class folders: decoding it once, and reopening it on every script run.

    python bench/folder_data.py [--classes 10] [--per-class 200] [--sizes 32,64,128]
                                [--workers N] [--folder PATH]

Without `--folder`, a photo-like set is generated in a temporary folder: per class, JPEGs of
640 x 480 and 320 x 240, PNGs of 256 x 256 and grayscale JPEGs of 500 x 375 (a quarter
each). For each size: seconds to list and decode the set into a fresh cache (all
`--workers`), then the seconds a second `load` takes (what each script run of the app pays:
a few `stat` calls, no listing), with the number of images. Prints a table.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tinyviz.data import load  # noqa: E402

SHAPES = ((640, 480, "JPEG", "RGB"), (320, 240, "JPEG", "RGB"), (256, 256, "PNG", "RGB"),
          (500, 375, "JPEG", "L"))  # fmt: skip


def make(root: Path, classes: int, per_class: int) -> Path:
    rng = np.random.default_rng(0)
    for k in range(classes):
        folder = root / f"class_{k:03d}"
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, 3)
        for i in range(per_class):
            w, h, fmt, mode = SHAPES[i % len(SHAPES)]
            yy, xx = np.mgrid[0:h, 0:w]
            wave = np.sin(xx / (7 + k) + yy / (11 + i % 5))[..., None]
            arr = np.clip(base * (0.6 + 0.3 * wave) + rng.normal(0, 12, (h, w, 3)), 0, 255)
            buf = io.BytesIO()
            Image.fromarray(arr.astype(np.uint8)).convert(mode).save(buf, fmt, quality=90)
            (folder / f"{i}.{'png' if fmt == 'PNG' else 'jpg'}").write_bytes(buf.getvalue())
    return root


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--per-class", type=int, default=200)
    p.add_argument("--sizes", default="32,64,128")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--folder", help="an image folder of your own (default: generated)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tinyviz-folder-bench-"))
    try:
        folder = Path(args.folder) if args.folder else make(work / "set", args.classes,
                                                            args.per_class)  # fmt: skip
        print(f"{folder}: {args.workers} workers, load average {os.getloadavg()[0]:.1f}")
        print("| size | images | decode (s) | images/s | reopen (ms, median of 20) |")
        print("|---:|---:|---:|---:|---:|")
        for size in [int(s) for s in args.sizes.split(",")]:
            cache = work / f"cache-{size}"
            start = time.perf_counter()
            data = load(folder, size=size, root=cache, workers=args.workers, progress=False)
            built = time.perf_counter() - start
            times = []
            for _ in range(20):
                start = time.perf_counter()
                load(folder, size=size, root=cache, progress=False)
                times.append(time.perf_counter() - start)
            n = len(data.train) + len(data.val)
            print(f"| {size} | {n:,} | {built:.2f} | {n / built:,.0f} | "
                  f"{statistics.median(times) * 1000:.1f} |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
