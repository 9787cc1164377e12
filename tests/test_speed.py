"""Measured model costs and the estimates and choices built on them (tinyviz.explain.speed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyviz.explain import saliency, speed


@dataclass
class FakeRun:
    path: Path
    top1: float


@pytest.fixture
def idle(monkeypatch):
    monkeypatch.setattr(speed, "load_factor", lambda: 1.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)


def test_estimates_follow_the_methods_passes(idle):
    s = speed.Speed(forward=0.01, backward=0.09)
    methods = {m.name: m for m in saliency.METHODS}
    assert s.scale == pytest.approx(1.8)
    assert s.saliency_seconds(methods["gradient"]) == pytest.approx(0.05)
    assert s.saliency_seconds(methods["integrated_gradients"]) == pytest.approx(32 * 0.05)
    assert s.saliency_seconds(methods["occlusion"]) == pytest.approx(82 * 0.01 / 1.8)  # 9 x 9 + 1
    assert s.gradient_maps_seconds(6) == pytest.approx(0.3)
    assert s.pass_seconds(10_000) == pytest.approx(10_000 * 0.01 / 1.8)


def test_a_loaded_machine_makes_estimates_longer(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    monkeypatch.setattr(speed.os, "cpu_count", lambda: 2)
    assert speed.load_factor() == 4.0
    assert speed.Speed(0.01, 0.1).gradient_maps_seconds(1) == pytest.approx(0.4)


def test_record_and_read_back(tmp_path):
    speed.record(tmp_path, speed.Speed(0.02, 0.1, kind="cpu"))
    speed.record(tmp_path, speed.Speed(0.001, 0.002, kind="cuda"))
    assert speed.measured(tmp_path, "cpu") == speed.Speed(0.02, 0.1, kind="cpu")
    assert speed.measured(tmp_path, "cuda").forward == 0.001  # both kinds kept
    assert speed.measured(tmp_path / "elsewhere", "cpu") is None
    (tmp_path / "analysis" / speed.SPEED).write_text('{"cpu": {"forward": -1}}')
    assert speed.measured(tmp_path, "cpu") is None  # nonsense is no measurement


def test_the_default_run_on_a_cpu_is_the_best_fast_one(tmp_path, idle):
    slow, fast, unknown = (
        FakeRun(tmp_path / n, t) for n, t in [("a", 0.8), ("b", 0.6), ("c", 0.9)]
    )
    speed.record(slow.path, speed.Speed(0.05, 2.0))  # 6 gradient maps: about 7 s
    speed.record(fast.path, speed.Speed(0.02, 0.1))  # about 0.3 s
    runs = [slow, fast, unknown]
    assert speed.default_run(runs, "cpu") is fast
    assert speed.default_run(runs, "cuda") is unknown  # a GPU: simply the best
    assert speed.default_run([slow, unknown], "cpu") is unknown  # none known fast: the best
    assert speed.default_run([], "cpu") is None


def test_measure_times_a_model_and_restores_the_threads():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.LazyLinear(5)
    )
    model(torch.zeros(1, 3, 64, 64))
    images = np.zeros((20, 64, 64, 3), np.uint8)
    threads = torch.get_num_threads()
    found = speed.measure(model.eval(), images, torch.device("cpu"))
    assert found.kind == "cpu" and found.forward > 0 and found.backward > 0
    assert torch.get_num_threads() == threads


def test_durations_read_well():
    assert speed.duration(0.3) == "under a second"
    assert speed.duration(12.4) == "about 12 s"
    assert speed.duration(600) == "about 10 min"
    assert speed.duration(7200) == "about 2.0 h"


def test_a_stored_speed_spares_the_timed_batch(tmp_path, idle):
    """`forward_seconds` with the run's stored speed runs no model pass: a third of a
    second of a page's script run for a ResNet-18 on a CPU."""
    from tinyviz.explain import runinfo

    class Untouchable(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise AssertionError("the model was run")

    run = tmp_path / "run"
    speed.record(run, speed.Speed(0.04, 0.1))
    per_image = runinfo.forward_seconds(Untouchable(), run)
    assert per_image == pytest.approx(speed.measured(run, "cpu").pass_seconds(1))
    with pytest.raises(AssertionError, match="was run"):
        runinfo.forward_seconds(Untouchable(), tmp_path / "no-speed-stored")
