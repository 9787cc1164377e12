"""The checkpoints shipped in `checkpoints/` load and fit their configs (accuracy needs data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyviz import models, runs

SHIPPED = sorted(
    p for p in (Path(__file__).parents[1] / "checkpoints").iterdir() if (p / "config.json").exists()
)


def test_there_are_shipped_runs():
    families = {runs.open_run(p).model_name for p in SHIPPED}
    assert {"resnet18", "effnet_lite2", "inception_v3_like", "googlenet_like"} <= families
    assert any(runs.RunFolder(p).epoch_views() for p in SHIPPED)  # the epoch slider shows


@pytest.mark.parametrize("run_dir", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_run_loads(run_dir):
    run = runs.open_run(run_dir)
    assert run.model_name in models.names()
    assert len(run.wnids) == 200 == len(set(run.wnids)) == len(run.class_names)
    assert all(w.startswith("n") and len(w) == 9 for w in run.wnids)
    assert run.metrics and all(0 <= m.val_top1 <= 1 for m in run.metrics)
    assert run.score.n == 10000 and run.score.measured_on.startswith("val, 10,000 images")
    model = runs.load_model(run_dir)
    with torch.inference_mode():
        out = model(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 200) and torch.isfinite(out).all()
    size = (run_dir / "model.safetensors").stat().st_size
    assert size < 30 * 2**20
