"""What a run's model costs on this kind of device, measured, and the estimates built on it.

Every analysis pass records in `RUN/analysis/speed.json`, per device kind ("cpu", "cuda"),
the cost of a forward pass per image (in a batch of 16) and of one image's input gradient.
On a CPU these are CPU seconds with ONE thread: wall-clock times of a machine shared with
other work measure the load more than the model (on a loaded 2-core machine, two threads
made a single-image gradient SLOWER than one thread, and inflated the wall time of a
forward pass many times over; bench/results/docstring_timings.md), while one thread's CPU
time barely moves. Estimates for a page divide it by what `torch`'s threads give on an idle
machine (`PARALLEL`) and multiply it by the load of the moment (`load_factor`); a running
analysis job measures its own wall time instead (`analysis_job`).

FLOPs do not predict a CPU's cost either: EfficientNet-Lite0 at 192 px has 8 times fewer
FLOPs than our ResNet-18 at 64 px, yet measured alike (its depthwise convolutions). The
estimates say how long a saliency method or a channel's gradient maps will take before
they start, and the dashboard's default run on a machine without a GPU is the best of the
runs whose pages answer fast there (`default_run`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import io
from ..errors import CheckpointError
from ..runs.folder import RunFolder
from . import mirror

SPEED = "speed.json"
FAST_PAGE_SECONDS = 2.0  # a channel's 6 gradient maps within this: the run's pages answer fast
FLOP_SECONDS_CPU = 3e-11  # rough CPU seconds per FLOP, one thread (see bench/results)
BATCH = 16
PARALLEL = 0.8  # each thread beyond the first adds this much speed on an idle machine


@dataclass(frozen=True)
class Speed:
    """Costs per image: `forward` in a batch, `backward` one image's input gradient (forward
    and backward); CPU seconds with one thread on a CPU, wall seconds on a GPU."""

    forward: float
    backward: float | None = None
    measured: bool = True  # False: guessed from the model's FLOPs
    kind: str = "cpu"

    @property
    def scale(self) -> float:
        """Divide a cost by this for the wall time here: the threads' speed-up on an idle
        machine, over the share of the cores this process gets now (`load_factor`)."""
        if self.kind != "cpu":
            return 1.0
        return (1.0 + PARALLEL * (max(torch.get_num_threads(), 1) - 1)) / load_factor()

    def saliency_seconds(self, method) -> float:
        """About how long `method` (a `saliency.Method`) takes on one image."""
        cost = _backward_passes(method) * self.per_backward + _forward_passes(method) * self.forward
        return cost / self.scale

    def gradient_maps_seconds(self, images: int) -> float:
        """About how long a channel's gradient maps of `images` images take (an upper
        bound: the pass stops at the channel's layer)."""
        return images * self.per_backward / self.scale

    def pass_seconds(self, images: int) -> float:
        """About how long the analysis pass over `images` images takes."""
        return images * self.forward / self.scale

    @property
    def per_backward(self) -> float:
        return self.backward if self.backward is not None else 3 * self.forward


def load_factor() -> float:
    """How many times slower than idle the CPU is now: the last minute's load average over
    the cores, at least 1 (1 where the system does not say)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 1.0
    return max(1.0, load / max(os.cpu_count() or 1, 1))


def _backward_passes(method) -> int:
    d = method.defaults
    if method.name == "smoothgrad":
        return int(d.get("nt_samples", 16))
    if method.name == "integrated_gradients":
        return int(d.get("n_steps", 32))
    if method.name == "occlusion":
        return 0
    return 1


def _forward_passes(method, size: int = 64) -> int:
    if method.name != "occlusion":
        return 0
    d = method.defaults
    side = (size - int(d.get("window", 16))) // int(d.get("stride", 6)) + 1
    return side * side + 1


# ------------------------------------------------------------------ storing


def _path(run_dir: Path) -> Path:
    return RunFolder(Path(run_dir)).analysis / SPEED


def record(run_dir: Path, found: Speed) -> None:
    """Store this device kind's measured costs of the run (others' entries are kept)."""
    stored = _read_all(run_dir)
    stored[found.kind] = {
        "forward": round(float(found.forward), 6),
        "backward": None if found.backward is None else round(float(found.backward), 6),
        "unit": "CPU seconds, one thread" if found.kind == "cpu" else "seconds",
        "measured": time.strftime("%Y-%m-%d"),
    }
    io.write_json(mirror.writable(_path(run_dir), Path(run_dir)), stored)  # shipped: mirror


def _read_all(run_dir: Path) -> dict:
    """The entries of the run's own file, with those measured here since (its mirror's)."""
    found: dict = {}
    for path in reversed(mirror.candidates(_path(run_dir), Path(run_dir))):
        try:
            stored = io.read_json(path, inside=path.parent.parent)
        except CheckpointError:
            continue
        found.update(stored if isinstance(stored, dict) else {})
    return found


def measured(run_dir: Path, kind: str) -> Speed | None:
    """The stored costs of the run on `kind` ("cpu", "cuda"), or None."""
    entry = _read_all(run_dir).get(kind)
    if not isinstance(entry, dict):
        return None
    forward, backward = entry.get("forward"), entry.get("backward")
    if not isinstance(forward, int | float) or forward <= 0:
        return None
    back = float(backward) if isinstance(backward, int | float) else None
    return Speed(float(forward), back, kind=kind)


def of_run(run, kind: str) -> Speed | None:
    """Measured costs, else a guess from the model's FLOPs on a CPU (None on a GPU)."""
    found = measured(run.path, kind)
    if found is not None:
        return found
    flops = run.config.model.flops
    if kind == "cpu" and flops:
        return Speed(flops * FLOP_SECONDS_CPU, None, measured=False)
    return None


def measure(model: torch.nn.Module, images_u8: np.ndarray, device: torch.device) -> Speed:
    """Time the model: a forward pass of `BATCH` images and single-image input gradients
    (the median of three), after a warm-up. On a CPU with one thread, in CPU seconds (see
    the module docstring); the thread count is restored afterwards."""
    from ..data.batches import to_float

    x = to_float(torch.from_numpy(np.array(images_u8[:BATCH], np.uint8)).to(device))
    on_cpu = device.type == "cpu"
    clock = time.process_time if on_cpu else time.perf_counter
    threads = torch.get_num_threads()
    if on_cpu:
        torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            model(x[:2])
            _sync(device)
            start = clock()
            model(x)
            _sync(device)
            forward = (clock() - start) / len(x)
        times = []
        for i in range(4):
            one = x[:1].clone().requires_grad_(True)
            start = clock()
            with torch.enable_grad():  # the input's gradient only, as the explainers ask
                torch.autograd.grad(model(one).max(), one)
            _sync(device)
            if i:
                times.append(clock() - start)
    finally:
        torch.set_num_threads(threads)
    return Speed(forward, float(np.median(times)), kind=device.type)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ------------------------------------------------------------------ choosing


def default_run(runs: Sequence, kind: str):
    """The run the dashboard opens with: the best; on a CPU the best of those whose pages
    answer fast there (measured), when there is one."""
    if not runs:
        return None
    best = max(runs, key=lambda r: r.top1)
    if kind != "cpu":
        return best
    fast = [r for r in runs if _fast(measured(r.path, kind))]
    return max(fast, key=lambda r: r.top1) if fast else best


def _fast(speed: Speed | None) -> bool:
    """Judged on an idle machine (the load of the moment does not change the default)."""
    if speed is None:
        return False
    return 6 * speed.per_backward / (speed.scale * load_factor()) <= FAST_PAGE_SECONDS


def duration(seconds: float) -> str:
    """'about 40 s', 'about 3 min', 'about 1.5 h': for estimates."""
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {max(1, round(seconds)):.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
