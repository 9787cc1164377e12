"""How long one photo's answers take while other sessions' script threads run Python, at
several interpreter switch intervals (`tinyviz.runtime.device.share_interpreter`).

    python bench/interpreter_share.py [--busy 3] [--repeat 6]

A Classify upload costs each chosen model (the two shipped defaults, `roots.best_runs`) a
forward pass for its top-5 (`predict.look`) and a Grad-CAM (a forward and a backward pass),
on one torch thread as in the server. Each torch operation lets the interpreter lock go
while it computes and must get it back to return; `--busy` threads meanwhile run plain
Python, as a crowd's other script runs do while they build charts, tables and Streamlit's
messages. Printed: the photo's seconds alone and with the busy threads, per interval, their
ratio to alone, and how much Python the busy threads got done meanwhile (what a shorter
interval costs them: the interpreter changes hands more often). Needs no data set: the
shipped runs only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time

import numpy as np
from _common import ROOT, fmt, load_average, table

INTERVALS = (0.005, 0.001, 0.0005, 0.00025, 0.0001)  # Python's default first


def photo_work():
    """(one photo's answers as a function, the runs' names)."""
    import torch

    from tinyviz.data.batches import to_model_input
    from tinyviz.demo import predict
    from tinyviz.explain import saliency
    from tinyviz.runs import load_model, open_run, roots

    torch.set_num_threads(1)  # as the server (`limit_threads`)
    runs = [open_run(p.parent) for p in sorted((ROOT / "checkpoints").glob("*/config.json"))]
    best = roots.best_runs(runs)
    nets = [load_model(r.path, device="cpu") for r in best]
    rgb = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)

    def answer() -> float:
        start = time.perf_counter()
        for net in nets:
            seen = predict.look(net, rgb)
            top = int(np.argmax(seen.logits))
            saliency.attribute(net, to_model_input(rgb), top, "gradcam")
        return time.perf_counter() - start

    answer()  # one-off set-up costs out of the timings
    return answer, [r.name for r in best]


class Busy:
    """`n` threads looping in plain Python, counting their loops."""

    def __init__(self, n: int) -> None:
        self.loops, self.stop = [0] * n, False
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def _run(self, i: int) -> None:
        while not self.stop:
            for _ in range(1000):
                pass
            self.loops[i] += 1

    def __enter__(self) -> Busy:
        for t in self.threads:
            t.start()
        time.sleep(0.2)
        return self

    def rate(self, work) -> tuple[list, float]:
        """`work()`'s results, and the loops a second of all threads together meanwhile
        (a loop: a thousand steps of Python)."""
        before, start = sum(self.loops), time.perf_counter()
        out = work()
        return out, (sum(self.loops) - before) / (time.perf_counter() - start)

    def __exit__(self, *exc) -> None:
        self.stop = True
        for t in self.threads:
            t.join()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--busy", type=int, default=3, help="threads running Python meanwhile")
    p.add_argument("--repeat", type=int, default=6, help="photos per interval")
    args = p.parse_args()
    if args.busy < 1 or args.repeat < 1:
        p.error("--busy and --repeat must be at least 1")
    answer, names = photo_work()
    default = sys.getswitchinterval()
    alone = statistics.median(answer() for _ in range(args.repeat))
    rows = [["alone", "-", fmt(alone), "1.0", "-"]]
    try:
        for interval in INTERVALS:
            sys.setswitchinterval(interval)
            with Busy(args.busy) as busy:
                took, rate = busy.rate(lambda: [answer() for _ in range(args.repeat)])
            median = statistics.median(took)
            rows.append([f"{interval * 1000:g} ms", str(args.busy), fmt(median),
                         f"{median / alone:.1f}", f"{rate:,.0f}"])  # fmt: skip
    finally:
        sys.setswitchinterval(default)
    print(f"One photo's answers ({' and '.join(names)}: top-5 and Grad-CAM each), "
          f"{args.repeat} per row; {load_average()}.")  # fmt: skip
    print(table(
        "Median seconds per photo, by the interpreter's switch interval",
        ["interval", "busy threads", "photo", "x alone", "busy threads' loops/s meanwhile"],
        rows,
    ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
