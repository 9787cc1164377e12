"""The run folder: the one place that knows its file names, and its files' typed schema.

A run folder holds `config.json` (model, options, training config, classes, versions),
`metrics.jsonl` (one line per epoch), `model.safetensors` (the weights to use),
`snapshots/` (the K best epochs, listed in `snapshots/index.json`), `epochs/E/` (the light
view of epoch E that `--epoch-views` keeps: its half-precision `model.safetensors` and its
`analysis/`), `evals.json` (every `evaluate` result), and while training
`resume.safetensors` (what `--resume` needs, one file so that it is committed at once),
`progress.json`, `job.json` and `train.log`.

Every file is input: a run folder can come from someone else. `open_run` parses each file
once, strictly, into frozen dataclasses (`RunConfig`, `EpochMetrics`, `EvalRecord`,
`Snapshot`); a file that does not fit makes the whole run a `BrokenRun` with a one-line
reason, which `scan` lists beside the good runs instead of crashing whoever asked. Files are
read only if they are regular files inside the folder, with a size bound (`tinyviz.io`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import TypeAdapter, ValidationError

from .. import io, models
from ..config import STRICT, TrainConfig, describe_error
from ..errors import CheckpointError, TinyvizError
from ..models.external import Preprocessing

SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.safetensors")
EPOCH_NAME = re.compile(r"[1-9][0-9]{0,5}")  # an epoch view's folder: its epoch, no padding
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_WEIGHTS = 4 * 2**30  # larger than any model of the zoo in float32, with room
# Each record is read whole on every scan of the runs (each page view): bounded well below
# what would stall a page. A real run's are kilobytes (metrics: ~300 bytes an epoch).
MAX_CONFIG = 8 * 2**20  # 1,000 classes with every WordNet name fit many times over
MAX_METRICS = 8 * 2**20  # 25,000 epochs
MAX_RECORDS = 2**20  # evals.json, snapshots/index.json
MAX_ENTRIES = 10_000  # entries of evals.json and snapshots/index.json
FOLDERS = ("snapshots", "analysis", "epochs")  # where a run may hold a folder, never a file
GRAPH_FILES = ("model.onnx", "model.keras")  # an imported model's graph (RunFolder.graph)


# ---------------------------------------------------------------- the names


@dataclass(frozen=True)
class RunFolder:
    """Where each file of a run lives; nothing else in tinyviz spells these names."""

    path: Path
    CONFIG: ClassVar[str] = "config.json"
    METRICS: ClassVar[str] = "metrics.jsonl"
    WEIGHTS: ClassVar[str] = "model.safetensors"
    SNAPSHOTS: ClassVar[str] = "snapshots"
    INDEX: ClassVar[str] = "index.json"
    EVALS: ClassVar[str] = "evals.json"
    RESUME: ClassVar[str] = "resume.safetensors"
    LEGACY_RESUME: ClassVar[tuple[str, str]] = ("state.safetensors", "state.json")
    PROGRESS: ClassVar[str] = "progress.json"
    JOB: ClassVar[str] = "job.json"
    LOG: ClassVar[str] = "train.log"
    ANALYSIS: ClassVar[str] = "analysis"
    EPOCHS: ClassVar[str] = "epochs"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    config = property(lambda self: self.path / self.CONFIG)
    metrics = property(lambda self: self.path / self.METRICS)
    weights = property(lambda self: self.path / self.WEIGHTS)
    snapshots = property(lambda self: self.path / self.SNAPSHOTS)
    snapshot_index = property(lambda self: self.path / self.SNAPSHOTS / self.INDEX)
    evals = property(lambda self: self.path / self.EVALS)
    resume = property(lambda self: self.path / self.RESUME)
    progress = property(lambda self: self.path / self.PROGRESS)
    job = property(lambda self: self.path / self.JOB)
    log = property(lambda self: self.path / self.LOG)
    analysis = property(lambda self: self.path / self.ANALYSIS)
    epochs = property(lambda self: self.path / self.EPOCHS)

    def graph(self, name: str) -> Path:
        """An imported model's graph file (`model.onnx` or `model.keras`)."""
        if name not in GRAPH_FILES:
            raise CheckpointError(f"{self.config}: {name!r} is not a model graph file name")
        return self.path / name

    def snapshot(self, file: str) -> Path:
        """The path of a snapshot's weights; the name must be a plain file name."""
        if not SNAPSHOT_NAME.fullmatch(file or ""):
            raise CheckpointError(f"{self.snapshot_index}: {file!r} is not a snapshot file name")
        return self.snapshots / file

    def epoch_view(self, epoch: int) -> Path:
        """The folder of epoch `epoch`'s view: `epochs/E/`, holding `model.safetensors` and
        `analysis/` (the same names as the run's own)."""
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise CheckpointError(f"{self.path}: {epoch!r} is not an epoch number")
        return self.epochs / str(epoch)

    def epoch_weights(self, epoch: int) -> Path:
        return self.epoch_view(epoch) / self.WEIGHTS

    def epoch_analysis(self, epoch: int) -> Path:
        return self.epoch_view(epoch) / self.ANALYSIS

    def epoch_folders(self) -> list[Path]:
        """Every folder in `epochs/` named by an epoch (a view, or what a kill left of one).
        Anything else there (a stray file, a folder `007`, a link) is not ours: ignored, as
        the folder can come from someone else."""
        try:
            entries = list(self.epochs.iterdir())
        except OSError:
            return []
        return [p for p in entries if EPOCH_NAME.fullmatch(p.name) and not p.is_symlink()]

    def epoch_views(self) -> tuple[int, ...]:
        """The epochs with a view here, in order: epoch folders that hold a weights file."""
        found = [
            int(p.name)
            for p in self.epoch_folders()
            if (p / self.WEIGHTS).is_file() and not (p / self.WEIGHTS).is_symlink()
        ]
        return tuple(sorted(found))

    def legacy_resume(self) -> tuple[Path, Path] | None:
        """The two-file resume state of older versions, when both files are there."""
        tensors, meta = (self.path / n for n in self.LEGACY_RESUME)
        return (tensors, meta) if tensors.exists() and meta.exists() else None

    def has_resume_state(self) -> bool:
        return self.resume.exists() or self.legacy_resume() is not None

    def holds_run(self) -> bool:
        """Whether a run already lives here (a launch that failed early leaves none)."""
        return (
            any(p.exists() for p in (self.config, self.weights, self.resume))
            or self.legacy_resume() is not None
        )

    def weights_stamp(self) -> tuple[int, int]:
        """(size, mtime in ns) of the weights: changes whenever they are rewritten."""
        try:
            st = self.weights.stat()
        except OSError:
            return (0, 0)
        return (st.st_size, st.st_mtime_ns)


# ---------------------------------------------------------------- the schema


@dataclass(frozen=True)
class ImportInfo:
    """Where an imported model came from and how it is rebuilt (`tinyviz import`).

    `route`: "tinyviz" (a zoo model with weights from elsewhere), "torchvision", "timm",
    "code" (the user's class or factory, `arch` = "file.py:Name" or "module:Name", whose
    file's SHA-256 is `code_digest`), "onnx" or "keras" (the graph kept in the run as
    `graph`, rebuilt from it, weights from model.safetensors). `head` and `channel_layers`
    name modules inside the network; `output_order` reorders outputs when no linear head
    could be reordered in the weights; `preprocess` is what the network expects.
    """

    __pydantic_config__ = STRICT

    route: Literal["tinyviz", "torchvision", "timm", "code", "onnx", "keras"]
    file: str  # the imported file's name, as the user had it
    sha256: str = ""
    arch: str = ""
    graph: str = ""
    code_digest: str = ""
    preprocess: Preprocessing = field(default_factory=Preprocessing)
    head: str = ""
    channel_layers: tuple[str, ...] = ()
    output_order: tuple[int, ...] = ()
    class_order: str = ""  # how the outputs were matched to the classes, in words

    def __post_init__(self) -> None:
        if self.graph and self.graph not in GRAPH_FILES:
            raise ValueError(f"{self.graph!r} is not a model graph file name")
        if self.route in ("onnx", "keras") and self.graph != GRAPH_FILES[self.route == "keras"]:
            raise ValueError(f"an imported {self.route} model needs its graph file")


@dataclass(frozen=True)
class ModelInfo:
    __pydantic_config__ = STRICT

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    source: str = ""
    params: int | None = None
    flops: int | None = None
    imported: ImportInfo | None = None  # made by `tinyviz import` from a model trained elsewhere


@dataclass(frozen=True)
class ClassList:
    __pydantic_config__ = STRICT

    wnids: tuple[str, ...]
    names: tuple[str, ...]
    full_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.wnids or len(self.names) != len(self.wnids):
            raise ValueError(f"{len(self.wnids)} wnids but {len(self.names)} names")
        if self.full_names and len(self.full_names) != len(self.wnids):
            raise ValueError(f"{len(self.wnids)} wnids but {len(self.full_names)} full names")
        if len(set(self.wnids)) != len(self.wnids):
            raise ValueError("a wnid is listed twice")


@dataclass(frozen=True)
class DataInfo:
    __pydantic_config__ = STRICT

    source: str = ""
    train: int | None = None
    val: int | None = None
    size: int | None = None  # the decoded images' side (runs from before sizes: 64)


@dataclass(frozen=True)
class RunConfig:
    """`config.json`: what the run is, how it was trained, on which classes, where."""

    __pydantic_config__ = STRICT

    model: ModelInfo
    train: TrainConfig
    classes: ClassList
    data: DataInfo = field(default_factory=DataInfo)
    env: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def gpu(self) -> str:
        """The hardware it was trained on, for the tables ("NVIDIA H100", "cpu")."""
        return str(self.env.get("gpu") or self.env.get("device") or "?")


@dataclass(frozen=True)
class EpochMetrics:
    """One line of `metrics.jsonl`."""

    __pydantic_config__ = STRICT

    epoch: int
    train_loss: float
    train_top1: float
    val_loss: float
    val_top1: float
    val_top5: float
    lr: float = 0.0
    seconds: float = 0.0
    train_seconds: float = 0.0
    images_per_s: float = 0.0


@dataclass(frozen=True)
class EvalRecord:
    """One result of `python -m tinyviz evaluate`, with what it was measured on."""

    __pydantic_config__ = STRICT

    split: str
    tta: str
    ensemble: int
    top1: float
    top5: float
    loss: float
    n: int
    curve: tuple[float, ...] = ()
    seconds: float = 0.0
    run: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record as stored: fields without a value (no curve) are left out."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in ((), None)}

    @property
    def plain(self) -> bool:
        """A single model on the validation set without test-time augmentation."""
        return self.split == "val" and self.tta == "none" and self.ensemble == 1

    def describe(self) -> str:
        """'val, 10,000 images, flip TTA, ensemble of 4 snapshots'."""
        parts = [self.split, f"{self.n:,} images"]
        if self.tta != "none":
            parts.append(f"{self.tta} TTA")
        parts.append(
            "single model" if self.ensemble == 1 else f"ensemble of {self.ensemble} snapshots"
        )
        return ", ".join(parts)


@dataclass(frozen=True)
class Snapshot:
    """An entry of `snapshots/index.json`: a kept epoch's weights and its score."""

    __pydantic_config__ = STRICT

    epoch: int
    top1: float
    file: str

    def __post_init__(self) -> None:
        if not SNAPSHOT_NAME.fullmatch(self.file):
            raise ValueError(f"{self.file!r} is not a snapshot file name")


@dataclass(frozen=True)
class Score:
    """The one accuracy a run is shown with everywhere, and what it was measured on."""

    top1: float | None
    top5: float | None
    loss: float | None
    n: int | None
    measured_on: str


_CONFIG = TypeAdapter(RunConfig)
_METRICS = TypeAdapter(EpochMetrics)
_EVALS = TypeAdapter(tuple[EvalRecord, ...])
_SNAPSHOTS = TypeAdapter(tuple[Snapshot, ...])


def parse(adapter: TypeAdapter, data: bytes, where: Path | str) -> Any:
    """Validate JSON bytes against a schema; a one-line `CheckpointError` names the field."""
    try:
        return adapter.validate_json(data)
    except (ValidationError, ValueError) as e:
        raise CheckpointError(f"{where}: {describe_error(e)}") from None


# ------------------------------------------------------------------ the run


@dataclass(frozen=True)
class Run:
    """A parsed run folder: what the dashboard lists and the loaders rebuild from."""

    folder: RunFolder
    config: RunConfig
    metrics: tuple[EpochMetrics, ...]
    evals: tuple[EvalRecord, ...]
    snapshots: tuple[Snapshot, ...]  # best first
    stamp: tuple[int, int]  # the weights' (size, mtime_ns) when the run was read

    path = property(lambda self: self.folder.path)
    name = property(lambda self: self.folder.name)
    model_name = property(lambda self: self.config.model.name)
    wnids = property(lambda self: list(self.config.classes.wnids))
    class_names = property(lambda self: list(self.config.classes.names))

    @property
    def full_names(self) -> list[str]:
        return list(self.config.classes.full_names or self.config.classes.names)

    @property
    def score(self) -> Score:
        """The plain validation score of the weights: the evaluated one when recorded (the
        largest image count), else the last epoch's (model.safetensors holds the last)."""
        plain = [e for e in self.evals if e.plain]
        if plain:
            e = max(plain, key=lambda e: e.n)
            return Score(e.top1, e.top5, e.loss, e.n, e.describe())
        if not self.metrics:
            return Score(None, None, None, None, "not evaluated yet")
        last, n = self.metrics[-1], self.config.data.val
        return Score(
            last.val_top1,
            last.val_top5,
            last.val_loss,
            n,
            f"last epoch's validation score ({f'{n:,}' if n else '?'} images)",
        )

    @property
    def top1(self) -> float:
        return self.score.top1 or 0.0

    @property
    def imported(self) -> ImportInfo | None:
        """How the model came from elsewhere (`tinyviz import`), or None: trained here."""
        return self.config.model.imported

    @property
    def transfer(self) -> bool:
        """Whether the run started from ImageNet-pretrained weights (here: an imported
        model's training is not known)."""
        if self.imported is not None:
            return False
        spec = models.spec(self.model_name)
        return spec.pretrained and bool(self.config.model.options.get("pretrained", True))

    def mtime(self) -> float:
        return self.stamp[1] / 1e9

    def snapshot_path(self, snapshot: Snapshot | str) -> Path:
        return self.folder.snapshot(snapshot.file if isinstance(snapshot, Snapshot) else snapshot)

    def epoch_views(self) -> tuple[int, ...]:
        """The epochs kept as views (`--epoch-views`), listed now, in order."""
        return self.folder.epoch_views()

    def weights_file(self, snapshot: str | None = None, epoch: int | None = None) -> Path:
        """The weights to load: a snapshot's, an epoch view's, or (neither) the run's own."""
        if snapshot and epoch is not None:
            raise CheckpointError("weights come from a snapshot or an epoch view, not both")
        if epoch is not None:
            return self.folder.epoch_weights(epoch)
        return self.snapshot_path(snapshot) if snapshot else self.folder.weights


@dataclass(frozen=True)
class BrokenRun:
    """A folder that looks like a run but cannot be used, and why (one line)."""

    path: Path
    reason: str

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class Scan:
    runs: tuple[Run, ...]
    broken: tuple[BrokenRun, ...]


def open_run(path: Path) -> Run:
    """Parse a run folder; `CheckpointError` (one line) if any of its files does not fit."""
    folder = RunFolder(Path(path))
    if not folder.path.is_dir():
        raise CheckpointError(f"run folder does not exist: {folder.path}")
    for name in FOLDERS:
        place = folder.path / name
        if (place.is_symlink() or place.exists()) and not place.is_dir():
            raise CheckpointError(f"{name} should be a folder but is not")
    config = read_config(folder)
    if folder.weights.exists() or folder.weights.is_symlink():  # its header, not its tensors
        header = io.safetensors_header(folder.weights, max_bytes=MAX_WEIGHTS, inside=folder.path)
        check_head(header, len(config.classes.wnids), folder.config)
    return Run(
        folder,
        config,
        read_metrics(folder),
        read_evals(folder),
        read_snapshots(folder),
        folder.weights_stamp(),
    )


def read_config(folder: RunFolder) -> RunConfig:
    config = parse(
        _CONFIG,
        io.read_bytes(folder.config, max_bytes=MAX_CONFIG, inside=folder.path),
        folder.config,
    )
    check_model(config, folder.config)
    return config


def check_head(header: dict, classes: int, where: Path | str) -> None:
    """The weights have a layer with one output per class the config names (its head; any
    axis, as Keras stores a kernel in x out): a config of 5,000 class names beside a 200-way
    head is refused here, from the header."""
    shapes = [
        info.get("shape")
        for name, info in header.items()
        if name != "__metadata__" and isinstance(info, dict)
    ]
    if shapes and not any(isinstance(s, list) and classes in s for s in shapes):
        raise CheckpointError(
            f"{where} names {classes:,} classes, but no layer of the weights has "
            f"{classes:,} outputs"
        )


def check_model(config: RunConfig, where: Path | str) -> None:
    """The model is registered, takes these options, and agrees with the training config
    (an imported network from elsewhere is checked when it is rebuilt)."""
    imported = config.model.imported
    if imported is not None and imported.route != "tinyviz":
        return
    try:
        models.check_options(config.model.name, config.model.options)
    except TinyvizError as e:
        raise CheckpointError(f"{where}: {e}") from None


def read_metrics(folder: RunFolder) -> tuple[EpochMetrics, ...]:
    if not folder.metrics.exists():
        return ()
    rows = []
    data = io.read_bytes(folder.metrics, max_bytes=MAX_METRICS, inside=folder.path)
    lines = data.splitlines()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(_METRICS.validate_json(line))
        except (ValidationError, ValueError) as e:
            if i == len(lines) and not data.endswith(b"\n") and _torn(line):
                continue  # a last line cut off by a kill, from an older non-atomic writer
            raise CheckpointError(f"{folder.metrics} line {i}: {describe_error(e)}") from None
    return tuple(rows)


def _torn(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return True
    return False


def read_evals(folder: RunFolder) -> tuple[EvalRecord, ...]:
    if not folder.evals.exists():
        return ()
    data = io.read_bytes(folder.evals, max_bytes=MAX_RECORDS, inside=folder.path)
    return parse(_EVALS, _few(data, folder.evals), folder.evals)


def read_snapshots(folder: RunFolder) -> tuple[Snapshot, ...]:
    if not folder.snapshot_index.exists():
        return ()
    data = io.read_bytes(folder.snapshot_index, max_bytes=MAX_RECORDS, inside=folder.path)
    return parse(_SNAPSHOTS, _few(data, folder.snapshot_index), folder.snapshot_index)


def _few(data: bytes, where: Path) -> bytes:
    """`data`, refused when it is a JSON list of more than MAX_ENTRIES entries (validating a
    million small entries one by one would take the page seconds)."""
    try:
        entries = json.loads(data)
    except (ValueError, RecursionError):
        return data  # the parser says what is wrong
    if isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise CheckpointError(f"{where} has {len(entries):,} entries (at most {MAX_ENTRIES:,})")
    return data


# ----------------------------------------------------------------- writing


def write_config(folder: RunFolder, config: RunConfig) -> None:
    io.write_json(folder.config, config.to_json())


def append_metrics(folder: RunFolder, row: EpochMetrics) -> None:
    io.append_jsonl(folder.metrics, dataclasses.asdict(row))


def write_metrics(folder: RunFolder, rows: Iterable[EpochMetrics]) -> None:
    io.write_jsonl(folder.metrics, [dataclasses.asdict(r) for r in rows])


def write_evals(folder: RunFolder, rows: Iterable[EvalRecord]) -> None:
    io.write_json(folder.evals, [r.to_json() for r in rows])


def write_snapshots(folder: RunFolder, snapshots: Iterable[Snapshot]) -> None:
    io.write_json(folder.snapshot_index, [dataclasses.asdict(s) for s in snapshots])


def record_eval(run: Run, result: EvalRecord) -> None:
    """Add an evaluation to `evals.json`, replacing one measured the same way."""
    same = ("split", "tta", "ensemble", "n")
    kept = [
        r
        for r in run.evals
        if tuple(getattr(r, k) for k in same) != tuple(getattr(result, k) for k in same)
    ]
    write_evals(run.folder, [*kept, result])


# ------------------------------------------------------------------ finding


def scan(roots: Iterable[Path]) -> Scan:
    """Every run folder (one with a config.json) directly under the given folders.

    A root may itself be a run. Runs without weights yet (a run in its first epoch) are
    left out; runs whose files do not parse are listed as broken, with the reason.
    """
    runs: dict[Path, Run] = {}
    broken: dict[Path, BrokenRun] = {}
    for path in _candidates(roots):
        try:
            key = path.resolve()
            dead = next((p for p in (path, path / RunFolder.CONFIG) if _dead_link(p)), None)
        except (OSError, RuntimeError):  # a loop of links: resolve() gives up
            key, dead = path.absolute(), path
        if dead is not None:
            reason = f"{dead.name} is a link that leads nowhere (a loop, or its target is gone)"
            broken.setdefault(key, BrokenRun(path, reason))
            continue
        weights = RunFolder(path).weights
        if key in runs or key in broken or not (weights.exists() or weights.is_symlink()):
            continue
        try:
            runs[key] = open_run(path)
        except TinyvizError as e:
            broken[key] = BrokenRun(path, _inside(str(e), path))
    ordered = sorted(runs.values(), key=lambda r: r.mtime(), reverse=True)
    return Scan(tuple(ordered), tuple(broken.values()))


def scan_fingerprint(roots: Iterable[Path]) -> tuple:
    """What `scan` of `roots` reads, by `stat` alone: each root's, each candidate run
    folder's and each file a `Run` is made of (config, weights, metrics, evaluations,
    snapshot index), as inode, size and change times. Equal fingerprints, equal scans: the
    run files are written by renaming a new file into place or appended to, and either
    changes them. A few stats per run, against reading and parsing its files: a dashboard
    scans once per script run of every visitor."""
    roots = [Path(r) for r in roots]
    parts: list[tuple] = [(str(r), _stat(r)) for r in roots]
    for path in _candidates(roots):
        f = RunFolder(path)
        files = (path, f.config, f.weights, f.metrics, f.evals, f.snapshot_index)
        parts.append((str(path), *map(_stat, files)))
    return tuple(parts)


def _stat(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except (OSError, RuntimeError):  # missing, or a loop of links
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _inside(reason: str, path: Path) -> str:
    """The reason with the run folder's own path left out: visitors see no server paths."""
    for spelling in {str(path), str(path.resolve())}:
        reason = reason.replace(spelling + os.sep, "").replace(spelling, path.name)
    return reason


def list_runs(roots: Iterable[Path]) -> list[Run]:
    """The good runs of `scan`, newest first."""
    return list(scan(roots).runs)


def _candidates(roots: Iterable[Path]) -> list[Path]:
    found = []
    for root in roots:
        root = Path(root)
        if (root / RunFolder.CONFIG).exists():
            found.append(root)
        elif root.is_dir():
            try:
                found += sorted(p for p in root.iterdir() if _looks_like_run(p))
            except OSError:
                continue
    return found


def _looks_like_run(path: Path) -> bool:
    """A folder with a config.json, or a link where one would be that leads nowhere (listed
    as broken rather than left out without a word)."""
    config = path / RunFolder.CONFIG
    try:
        return config.exists() or config.is_symlink() or _dead_link(path)
    except (OSError, RuntimeError):
        return True


def _dead_link(path: Path) -> bool:
    try:
        return path.is_symlink() and not path.exists()
    except OSError:  # ELOOP on the way there
        return True
