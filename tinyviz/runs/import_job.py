"""The Import page's background job: `tinyviz import` for a file on the server's disk.

An import converts, evaluates on the whole validation set and starts the analysis: tens of
seconds on a CPU, too long for a page's script run, so it runs in its own process of the
one background system (`tinyviz.runtime.background`), and the page reads its log back.
The request is checked here first, so a careless one is refused in one line before any
process starts, and an existing run folder is never written over.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError
from ..runtime.background import JobFiles
from . import roots
from .folder import RUN_NAME

JOBS = ".imports"  # under the runs folder: one lock, record and log per new run's name
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".tar", ".ckpt", ".onnx", ".keras", ".h5")


@dataclass(frozen=True)
class ImportForm:
    """What a visitor typed on the Import page (the same options as `tinyviz import`)."""

    weights: str
    name: str
    data: str
    arch: str = ""
    size: int | None = None
    normalize: str = ""
    classes: str = ""


@dataclass(frozen=True)
class ImportStatus:
    """One answer for the page: what the import of `name` is doing or did."""

    state: Literal["none", "running", "done", "failed"]
    run: Path | None = None
    result: dict | None = None  # the command's JSON line (top-1, top-5, warning...)
    reason: str = ""  # the one-line refusal of a failed import
    log: tuple[str, ...] = ()


def files(name: str) -> JobFiles:
    base = roots.runs_dir() / JOBS
    return JobFiles(base / f"{name}.lock", base / f"{name}.json", base / f"{name}.log")


def command(form: ImportForm) -> list[str]:
    """The `tinyviz import` command line for `form`, refused in one line where it is wrong."""
    weights = Path(form.weights).expanduser()
    if not weights.is_file():
        raise ConfigError(f"{form.weights}: no such file on the server")
    if not weights.name.lower().endswith(WEIGHT_SUFFIXES):
        raise ConfigError(f"{weights.name}: not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
    if not RUN_NAME.fullmatch(form.name):
        raise ConfigError(f"{form.name!r}: a run name is letters, digits, '.', '_' and '-'")
    out = roots.runs_dir() / form.name
    if out.exists():
        raise ConfigError(f"a run named {form.name} exists already: choose another name")
    cmd = [sys.executable, "-m", "tinyviz", "import", str(weights.resolve()), "--out", str(out)]
    cmd += ["--data", form.data]
    for flag, value in (("--arch", form.arch), ("--normalize", form.normalize)):
        if value.strip():
            cmd += [flag, value.strip()]
    if form.size:
        cmd += ["--size", str(int(form.size))]
    if form.classes.strip():
        cmd += ["--classes", str(Path(form.classes.strip()).expanduser())]
    return cmd


def start(form: ImportForm) -> None:
    """Launch the import (`Busy` when the same name is being imported already)."""
    files(form.name).launch(command(form), note={"name": form.name})


def status(name: str) -> ImportStatus:
    job = files(name)
    if not job.log.exists():
        return ImportStatus("none")
    lines = tuple(job.log_tail(12))
    if job.running():
        return ImportStatus("running", log=lines)
    if failed := job.failed():
        return ImportStatus("failed", reason=failed.removeprefix("error: "), log=lines)
    result = _result(lines)
    if result is None:
        return ImportStatus("failed", reason="the import stopped without a result", log=lines)
    return ImportStatus("done", run=Path(result["run"]), result=result, log=lines)


def _result(lines: tuple[str, ...]) -> dict | None:
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                found = json.loads(line)
            except ValueError:
                continue
            if isinstance(found, dict) and isinstance(found.get("run"), str):
                return found
    return None
