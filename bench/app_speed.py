"""Dashboard speed on this machine: first-visit caches, then each page's interactions.

    python bench/app_speed.py --data PATH [--run checkpoints/resnet18-push] [--limit N]

Measures what the pages call, without the browser: the one-time analysis pass over the
validation set (cached in the run folder; `--fresh` recomputes it), the embeddings, and
then the interactions a visitor makes (confusion matrix, a cell's images, a channel's top
images and gradient maps, an upload's top-5, each saliency method). Prints a table.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from tinyviz import runs
from tinyviz.data import load
from tinyviz.data.batches import to_model_input
from tinyviz.demo import predict
from tinyviz.demo.images import load_upload
from tinyviz.explain import analysis, channels, confusion, embed
from tinyviz.explain import saliency as explain


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    """Median seconds over `repeat` calls, and the last result."""
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def upload_bytes(data) -> bytes:
    """A validation image as a 640x480 JPEG, the way a phone photo arrives."""
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(np.asarray(data.val.images[7])).resize((640, 480)).save(buf, "JPEG")
    return buf.getvalue()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--run", default="checkpoints/resnet18-push")
    p.add_argument("--limit", type=int, default=0, help="validation images (0 = all)")
    p.add_argument("--fresh", action="store_true", help="drop the run's analysis cache first")
    p.add_argument("--embeddings", default="pca,tsne,umap")
    args = p.parse_args()
    run, data = Path(args.run), load(args.data, progress=False)
    if args.fresh:
        shutil.rmtree(runs.RunFolder(run).analysis, ignore_errors=True)
    rows: list[tuple[str, str]] = [("torch threads", str(torch.get_num_threads()))]

    def add(name: str, seconds: float) -> None:
        rows.append((name, f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"))
        print(f"{name}: {rows[-1][1]}", flush=True)

    add(
        "first visit: validation pass (log-probs, features, channel maxima)",
        timed(lambda: analysis.compute_cache(run, data, limit=args.limit))[0],
    )
    add(
        "reopen the cached outputs",
        timed(lambda: analysis.val_outputs(run, data, limit=args.limit), 5)[0],
    )
    out = analysis.val_outputs(run, data, limit=args.limit)
    names, wnids = runs.open_run(run).class_names, runs.open_run(run).wnids
    for order in ("confusion", "wordnet"):
        add(
            f"confusion matrix, {order} order",
            timed(lambda o=order: confusion.confusion(out, names, order_by=o, wnids=wnids), 3)[0],
        )
    conf = confusion.confusion(out, names)
    pair = conf.pairs[0]
    add("images of a cell", timed(lambda: confusion.images_of_cell(out, pair.true, pair.pred), 5)[0])
    model = runs.load_model(run)
    maxima = analysis.load_maxima(analysis.cache_dir(run, data, args.limit))
    layer = list(maxima)[-1]
    top, dt = None, timed(lambda: channels.top_images(maxima[layer], 3, k=6), 5)
    add("a channel's top 6 images", dt[0])
    top = dt[1]
    add(
        "their 6 gradient maps",
        timed(
            lambda: channels.channel_gradients(model, np.asarray(data.val.images[top]), layer, 3), 3
        )[0],
    )
    for method in args.embeddings.split(","):
        add(
            f"first visit: {method} 2-D map",
            timed(lambda m=method: embed.cached_embedding(run, data, m, 2, limit=args.limit))[0],
        )
        add(
            f"reopen the {method} map",
            timed(lambda m=method: embed.cached_embedding(run, data, m, 2, limit=args.limit), 3)[0],
        )
    raw = upload_bytes(data)
    rgb = load_upload(raw).rgb
    run_obj = runs.open_run(run)
    add("upload: decode a 640x480 JPEG", timed(lambda: load_upload(raw), 5)[0])
    add(
        "upload: top-5",
        timed(lambda: predict.predict_ensemble([model], rgb, run_obj.class_names, run_obj.wnids), 10)[0],
    )
    x = to_model_input(rgb)
    target = int(predict.predict_ensemble([model], rgb, run_obj.class_names, run_obj.wnids).classes[0])
    for m in explain.METHODS:
        add(
            f"saliency: {m.label}",
            timed(lambda n=m.name: explain.attribute(model, x, target, n), 3)[0],
        )
    width = max(len(k) for k, _ in rows)
    print(
        f"\n{run.name} on {data.summary()['val'] if not args.limit else args.limit} "
        f"validation images, CPU\n"
    )
    print(f"| {'step':{width}s} | time |\n|{'-' * (width + 2)}|------|")
    for k, v in rows:
        print(f"| {k:{width}s} | {v} |")


if __name__ == "__main__":
    main()
