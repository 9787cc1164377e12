"""Hardening, counted: tried / handled for every class of bad input the tests know.

    python bench/hardening.py [--uploads] [--kills]

- tampered run folders (tests/tampered.py): handled = listed as broken (or its weights refused
  on loading) with a one-line reason, in under 30 s;
- tampered stored analyses (tests/tampered.py ANALYSIS_CASES): handled = treated as missing
  (computed again) with a one-line reason;
- careless commands (tests/badcommands.py): handled = a non-zero exit and one `error:` line,
  before the data set is looked at, nothing written;
- kills (with --kills): a training run SIGKILLed before each of its writes, then resumed;
  handled = the same weights as an uninterrupted run, every epoch once, no temporary file;
- hostile uploads (with --uploads, from tests/hostile.py): see bench/hostile_uploads.py.
Prints one table per class and a summary; the corpora are generated, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def from_tests(name: str):
    """A helper module of the test suite (the corpora live there, beside their tests)."""
    spec = importlib.util.spec_from_file_location(name, TESTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def good_run(base: Path) -> tuple[Path, Path]:
    """A small trained run on generated data (a few seconds), and its data zip."""
    from tinyviz.config import TrainConfig
    from tinyviz.data import load
    from tinyviz.training.loop import train

    tinydata = from_tests("tinydata")
    data_zip = tinydata.write_zip(base / "tiny-imagenet-200.zip", tinydata.make_files())
    data = load(data_zip, root=base / "cache", progress=False)
    cfg = TrainConfig(
        model="resnet18", model_options={"width": 8}, epochs=2, batch_size=32, lr=0.05, snapshots=2
    )
    run = train(cfg, data, base / "good" / "run", progress=False, log=lambda s: None)
    return run, data_zip


def row(name: str, handled: bool, seconds: float, how: str) -> tuple:
    return (name, "handled" if handled else "NOT HANDLED", seconds, how.replace("\n", " ")[:90])


def run_folders(good: Path, base: Path) -> list[tuple]:
    from tinyviz import runs
    from tinyviz.errors import TinyvizError

    tampered = from_tests("tampered")
    rows = []
    for i, (name, (breaks, _where)) in enumerate(sorted(tampered.CASES.items())):
        root = base / f"tampered{i:02d}"
        run = root / "victim"
        shutil.copytree(good, run, ignore=shutil.ignore_patterns("analysis"))
        breaks(run)
        start, crashed = time.monotonic(), False
        try:
            found = runs.scan([root])
            if found.broken:
                how = found.broken[0].reason
            else:
                runs.load_model(run)
                how = "accepted"
        except TinyvizError as e:
            how = str(e)
        except Exception as e:  # noqa: BLE001 - a crash: counted as not handled
            how, crashed = f"{type(e).__name__}: {e}", True
        seconds = time.monotonic() - start
        ok = not crashed and how != "accepted" and "\n" not in how and seconds < 30
        rows.append(row(name, ok, seconds, how))
    return rows


def stored_analyses(good: Path, base: Path, data_zip: Path) -> list[tuple]:
    """tests/tampered.py's ANALYSIS_CASES: handled = the analysis counts as missing (so the
    background job computes it again) with a one-line reason, and nothing crashes."""
    from tinyviz.data import load
    from tinyviz.explain import analysis

    tampered = from_tests("tampered")
    data = load(data_zip, root=base / "cache", progress=False)
    rows = []
    for i, (name, breaks) in enumerate(sorted(tampered.ANALYSIS_CASES.items())):
        run = base / f"analysis{i:02d}" / "victim"
        shutil.copytree(good, run)
        start, crashed = time.monotonic(), False
        try:
            breaks(analysis.cache_dir(run, data))
            how = analysis.problem(analysis.cache_dir(run, data)) or "accepted"
            missing = analysis.available(run, data) is None
        except Exception as e:  # noqa: BLE001 - a crash: counted as not handled
            how, crashed, missing = f"{type(e).__name__}: {e}", True, False
        ok = not crashed and missing and how != "accepted" and "\n" not in how
        rows.append(row(name, ok, time.monotonic() - start, how))
    return rows


def commands(good: Path, base: Path) -> list[tuple]:
    from tinyviz.cli import main

    bad = from_tests("badcommands")
    rows = []
    for i, command in enumerate(bad.COMMANDS):
        place = base / f"cmd{i:02d}"
        place.mkdir()
        (place / "file.txt").write_text("x")
        run = place / "run"
        shutil.copytree(good, run, ignore=shutil.ignore_patterns("analysis"))
        values = {"run": str(run), "file": str(place / "file.txt"), "new": str(place / "new")}
        argv = [part.format(**values) for part in command]
        before = sorted(p.name for p in place.rglob("*"))
        err = io.StringIO()
        start = time.monotonic()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = int(e.code)
        lines = err.getvalue().strip().splitlines()
        ok = (
            rc != 0
            and len(lines) == 1
            and lines[0].startswith("error: ")
            and (argv[0] == "data" or "/nonexistent" not in lines[0])
            and sorted(p.name for p in place.rglob("*")) == before
        )
        shown = " ".join(a.replace(str(place), "") for a in argv)
        rows.append(row(shown, ok, time.monotonic() - start, lines[0] if lines else "(silent)"))
    return rows


def kills(base: Path, data_zip: Path) -> list[tuple]:
    """The kill loop of tests/test_kill_writes.py, counted."""
    import torch

    from tinyviz import runs
    from tinyviz.cli import main

    killer = from_tests("test_kill_writes")
    ref = base / "kill-ref"
    res = killer.tinyviz(*killer.train_args(data_zip, ref))
    writes = int(res.stderr.strip().splitlines()[-1].split()[-1])
    want = runs.load_weights(ref / "model.safetensors")
    rows = []
    for k in range(1, writes + 1):
        out = base / f"kill{k:02d}"
        start = time.monotonic()
        killer.tinyviz(*killer.train_args(data_zip, out), kill_at=k)
        with contextlib.redirect_stderr(io.StringIO()):
            rc = main(["train", "--resume", str(out), "--data", str(data_zip), "--quiet"])
            how = "resumed"
            if rc != 0:
                rc, how = main([*killer.train_args(data_zip, out), "--overwrite"]), "restarted"
        got = runs.load_weights(out / "model.safetensors") if rc == 0 else {}
        same = rc == 0 and all(torch.allclose(want[n], got[n], atol=1e-6) for n in want)
        clean = not list(out.rglob("*.tmp"))
        rows.append(
            row(
                f"kill before write {k} of {writes}",
                same and clean,
                time.monotonic() - start,
                f"{how}; same weights: {same}; no temporary files: {clean}",
            )
        )
    return rows


def show(title: str, rows: list[tuple]) -> tuple[int, int]:
    print(f"\n## {title}\n")
    print(f"| {'case':52s} | outcome     | seconds | what the user sees |")
    print(f"|{'-' * 54}|-------------|---------|--------------------|")
    for name, outcome, seconds, how in rows:
        print(f"| {name[:52]:52s} | {outcome:11s} | {seconds:7.2f} | {how} |")
    handled = sum(r[1] == "handled" for r in rows)
    print(f"\ntried {len(rows)} / handled {handled}")
    return len(rows), handled


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", action="store_true", help="also the kill loop (minutes)")
    p.add_argument("--uploads", action="store_true", help="also the hostile-upload corpus")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tinyviz-hardening-"))
    good, data_zip = good_run(base)
    totals = [
        show("Tampered run folders", run_folders(good, base)),
        show("Tampered stored analyses", stored_analyses(good, base, data_zip)),
        show("Careless commands", commands(good, base)),
    ]
    if args.kills:
        totals.append(show("Kills during training", kills(base, data_zip)))
    if args.uploads:
        subprocess.run(
            [sys.executable, str(Path(__file__).with_name("hostile_uploads.py"))], check=False
        )
    tried, handled = (sum(t[i] for t in totals) for i in (0, 1))
    print(f"\nall (without uploads): tried {tried} / handled {handled}")
    shutil.rmtree(base, ignore_errors=True)
    return 0 if tried == handled else 1


if __name__ == "__main__":
    sys.exit(main())
