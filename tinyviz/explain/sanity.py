"""How far to trust each saliency method on a run: checked once per run, cached in its folder.

Two checks of every method of `saliency.METHODS`, on a fixed set of validation images:

1. Model randomization (Adebayo et al. 2018, "Sanity Checks for Saliency Maps"). The
   weights are re-initialised group by group from the top down (the head, then the last
   block, ... down to the stem: a cascade), and after each step the map of the randomized
   model is compared with the original one by Spearman rank correlation, of the absolute
   map (what the page draws) and of the signed one. A map that explains what the model
   LEARNED must change once the weights are random: its correlation falls towards 0. A map
   that stays the same (guided backprop, the paper's finding) shows the image's edges, not
   the model's reasons.
2. Faithfulness (`faithfulness`: RISE's deletion and insertion curves) on the original model.

The images: `Settings.images` validation images, one per class in the set's (shuffled) file
order; the target of each map is the model's own answer. The result (`TrustReport`) is a
small JSON file in `RUN/analysis/`, plus the heat maps of a few images at every step of the
cascade (`.npz`) for the page's strip; it is keyed by the weights' content hash, the
images' pixels and the settings, so it is valid in any copy of the run and of the data set,
and never silently reused for other weights. `python -m tinyviz sanity RUN` computes it
(a background process started by the Saliency page does the same).

Randomizing a group re-initialises its modules with their own `reset_parameters` (PyTorch's
default initialisation; batch norm also forgets its running statistics), seeded per group,
so depth d's model is depth d-1's with one more group random. Where a map of a randomized
model is constant (Grad-CAM often goes all zero), its rank correlation is undefined and
counted as 0: nothing of the original is left.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io as pyio
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import nn

from .. import io
from ..data.batches import to_model_input
from ..errors import CheckpointError
from ..models import describe
from ..runs.folder import RunFolder, open_run
from ..runs.weights import load_model
from ..runtime.device import pick_device
from ..runtime.locks import model_lock
from . import faithfulness, mirror, runinfo, saliency

Progress = Callable[[float, str], None]
FORMAT = 1
REPORT = "sanity.json"
MAPS = "sanity-maps.npz"
PASS_BELOW = 0.3  # mean |rho| over the cascade: below, the map depends on the learned weights
FAIL_ABOVE = 0.6  # above, it mostly shows the image whatever the weights


@dataclass(frozen=True)
class Settings:
    """What a check is computed on; part of its cache key."""

    images: int = 8  # validation images (spread over classes)
    steps: int = faithfulness.STEPS  # deletion / insertion steps
    seed: int = 0  # re-initialisation and tie-breaking
    strip: int = 4  # images whose randomized maps are kept for the page

    def __post_init__(self) -> None:
        if self.images < 1 or self.steps < 1 or self.strip < 0:
            raise ValueError("images and steps must be at least 1, strip at least 0")


@dataclass(frozen=True)
class LayerGroup:
    """Parameters re-initialised together at one step of the cascade."""

    name: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class MethodTrust:
    """One method's scores; correlations are means over the images, one per cascade step."""

    method: str
    abs_corr: tuple[float, ...]  # step d: groups 0..d random (stages[d] the last one)
    signed_corr: tuple[float, ...]
    abs_sd: tuple[float, ...]  # spread of abs_corr over the images
    deletion: tuple[float, ...]  # mean curve over the images
    insertion: tuple[float, ...]
    seconds: float  # time spent on this method (all steps, both checks)

    @property
    def deletion_auc(self) -> float:
        return faithfulness.auc(np.array(self.deletion))

    @property
    def insertion_auc(self) -> float:
        return faithfulness.auc(np.array(self.insertion))

    @property
    def randomized(self) -> float:
        """Rank correlation of the absolute map once every layer is random (0 = all changed)."""
        return self.abs_corr[-1] if self.abs_corr else float("nan")

    @property
    def after_top(self) -> float:
        """... once the head and the last block are random (where the class is decided)."""
        return self.abs_corr[min(1, len(self.abs_corr) - 1)] if self.abs_corr else float("nan")

    @property
    def score(self) -> float:
        """Mean |rank correlation| over the cascade's steps: the area under its curve, 0 when
        the map changes at the first step, 1 when it never changes."""
        return float(np.mean(np.abs(self.abs_corr))) if self.abs_corr else float("nan")

    @property
    def verdict(self) -> str:
        """passes / partly / fails, by `score`.

        The mean over the cascade rather than the last step: guided backprop's map keeps
        0.92 after the head and the last block are random on resnet18-push but drifts to 0.3
        once the stem is random too, because it follows the input's edges through every
        layer; the mean (0.66) says that it ignored most of what the model learned.
        """
        return (
            "passes"
            if self.score < PASS_BELOW
            else ("fails" if self.score > FAIL_ABOVE else "partly")
        )


@dataclass(frozen=True)
class TrustReport:
    """The sanity check of every method on one run."""

    run: str
    stages: tuple[str, ...]  # the groups randomized, top first
    images: tuple[int, ...]  # validation indices
    targets: tuple[int, ...]  # the class each map explains (the model's answer)
    methods: tuple[MethodTrust, ...]
    random_deletion: tuple[float, ...]  # the curves of a random pixel order
    random_insertion: tuple[float, ...]
    settings: Settings
    seconds: float
    device: str
    created: str = ""
    key: dict = field(default_factory=dict, compare=False)
    titles: tuple[str, ...] = field(default=(), compare=False)  # `stages` named for a visitor

    def method(self, name: str) -> MethodTrust | None:
        return next((m for m in self.methods if m.method == name), None)

    @property
    def stage_titles(self) -> tuple[str, ...]:
        """The groups randomized, top first, as a page names them ("Stage 4, block 2"); the
        module names (`stages`) where the report was stored without them."""
        return self.titles if len(self.titles) == len(self.stages) else self.stages

    @property
    def random_deletion_auc(self) -> float:
        return faithfulness.auc(np.array(self.random_deletion))

    @property
    def random_insertion_auc(self) -> float:
        return faithfulness.auc(np.array(self.random_insertion))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -------------------------------------------------------------- the cascade


def layer_groups(model: nn.Module) -> tuple[LayerGroup, ...]:
    """The model's parameters in groups, TOP first: head, top layers, channel layers, stem.

    Cut at the end of each of the model's `channel_layers` (in forward order, which is the
    order PyTorch registers parameters in for our models): a group is one channel layer and
    whatever lies between it and the one before. The head is `head_modules`.
    """
    names = [n for n, _ in model.named_parameters()]
    heads = tuple(getattr(model, "head_modules", ()))

    def in_head(n: str) -> bool:
        return any(n == h or n.startswith(h + ".") for h in heads)

    body = [n for n in names if not in_head(n)]
    cuts = []  # (first, last) index in `body` of each channel layer's parameters
    for layer in getattr(model, "channel_layers", ()):
        inside = [i for i, n in enumerate(body) if n.startswith(layer + ".")]
        if inside:
            cuts.append((inside[0], inside[-1], layer))
    cuts.sort()
    groups: list[LayerGroup] = []  # bottom first
    start = 0
    if cuts and cuts[0][0] > 0:
        groups.append(LayerGroup("stem", tuple(body[: cuts[0][0]])))
        start = cuts[0][0]
    for _, last, layer in cuts:
        if last >= start:
            groups.append(LayerGroup(layer, tuple(body[start : last + 1])))
            start = last + 1
    if start < len(body):
        groups.append(LayerGroup(_top_names(body[start:]), tuple(body[start:])))
    head = [n for n in names if in_head(n)]
    if head:
        groups.append(LayerGroup(_top_names(head), tuple(head)))
    return tuple(reversed(groups))


def stage_titles(model: nn.Module, groups: tuple[LayerGroup, ...]) -> tuple[str, ...]:
    """The groups' names for a visitor (`describe.part_title`)."""
    return tuple(describe.part_title(model, g.name) for g in groups)


def _top_names(params: list[str]) -> str:
    return "+".join(dict.fromkeys(p.split(".")[0] for p in params))


def randomize_group(model: nn.Module, group: LayerGroup, seed: int) -> None:
    """Re-initialise (in place) every module owning a parameter of `group`, seeded."""
    wanted = set(group.params)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.default_generator.manual_seed(seed)
        for name, module in model.named_modules():
            own = [f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False)]
            if not own or not set(own) & wanted:
                continue
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    if p.is_floating_point():  # not a Keras seed generator's counter
                        p.normal_(0, float(p.std()) if p.numel() > 1 else 0.02)


def cascade(
    model: nn.Module, seed: int = 0, groups: tuple[LayerGroup, ...] | None = None
) -> Iterator[tuple[LayerGroup, nn.Module]]:
    """Copies of `model` with more and more groups random, top down: (last group, model).

    Randomized on a CPU copy (seeded there, whatever the device), handed out on the
    model's device in eval mode. The caller's model is not changed.
    """
    device = next(model.parameters()).device
    work = copy.deepcopy(model).cpu().eval()
    for depth, group in enumerate(groups or layer_groups(model)):
        randomize_group(work, group, seed * 1000 + depth)
        yield group, copy.deepcopy(work).to(device).eval()


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two maps; 0 where one is constant (no ranking to compare)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(a, b).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def choose_images(labels: np.ndarray, n: int) -> np.ndarray:
    """`n` validation indices: in file order, one per class before any class gets a second."""
    labels = np.asarray(labels)
    seen: dict[int, int] = {}
    rank = np.empty(len(labels), np.int64)
    for i, c in enumerate(labels.tolist()):
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    return np.sort(np.argsort(rank, kind="stable")[:n]).astype(np.int64)


def methods_for(model: nn.Module) -> list[saliency.Method]:
    """The methods that apply (Grad-CAM needs a layer)."""
    return [m for m in saliency.METHODS if m.name != "gradcam" or model.gradcam_layer]


# ------------------------------------------------------------------ the check


def check(
    model: nn.Module,
    images_u8: np.ndarray,
    *,
    settings: Settings = Settings(),
    methods: list[str] | None = None,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Both checks on `images_u8` (N, H, W, 3): (the report's fields, the strip maps).

    The strip maps are (strip, methods, 1 + steps of the cascade, H, W) uint8 heat maps.
    """
    report = progress or (lambda f, m: None)
    chosen = [m for m in methods_for(model) if methods is None or m.name in methods]
    groups = layer_groups(model)
    device = next(model.parameters()).device
    xs = [to_model_input(np.asarray(img)).to(device) for img in images_u8]
    targets = _answers(model, xs)
    n, k = len(xs), len(groups)
    total = n * len(chosen) * (k + 1) + n * (len(chosen) + 1)
    done = [0]

    def tick(what: str) -> None:
        done[0] += 1
        report(done[0] / total, what)

    seconds = {m.name: 0.0 for m in chosen}
    strip = min(settings.strip, n)
    maps = np.zeros((strip, len(chosen), k + 1, *xs[0].shape[-2:]), np.uint8)
    originals: dict[tuple[str, int], Any] = {}
    for i, x in enumerate(xs):
        for j, m in enumerate(chosen):
            att = _timed(seconds, m.name, model, x, targets[i], m.name)
            originals[m.name, i] = att
            if i < strip:
                maps[i, j, 0] = _u8(att.heat)
            tick(f"original model, {m.label}, image {i + 1} / {n}")
    corr = {(m.name, s): np.zeros((k, n)) for m in chosen for s in ("abs", "signed")}
    for d, (group, random_model) in enumerate(cascade(model, settings.seed, groups)):
        for i, x in enumerate(xs):
            for j, m in enumerate(chosen):
                att = _timed(seconds, m.name, random_model, x, targets[i], m.name)
                base = originals[m.name, i]
                corr[m.name, "abs"][d, i] = rank_correlation(base.heat, att.heat)
                corr[m.name, "signed"][d, i] = rank_correlation(base.signed, att.signed)
                if i < strip:
                    maps[i, j, d + 1] = _u8(att.heat)
                tick(f"randomized down to {group.name}, {m.label}, image {i + 1} / {n}")
        del random_model
    curves: dict[str, list] = {m.name: [] for m in chosen}
    rand: list = []
    for i, x in enumerate(xs):
        for m in chosen:
            start = time.perf_counter()
            heat = originals[m.name, i].heat
            curves[m.name].append(
                faithfulness.curves(model, x, targets[i], heat, steps=settings.steps)
            )
            seconds[m.name] += time.perf_counter() - start
            tick(f"deletion and insertion, {m.label}, image {i + 1} / {n}")
        heat = faithfulness.random_heat(heat.shape, settings.seed + i)
        rand.append(faithfulness.curves(model, x, targets[i], heat, steps=settings.steps))
        tick(f"deletion and insertion, random order, image {i + 1} / {n}")
    trusts = tuple(
        MethodTrust(
            m.name,
            _means(corr[m.name, "abs"]),
            _means(corr[m.name, "signed"]),
            tuple(float(v) for v in corr[m.name, "abs"].std(1)),
            _mean_curve([c.deletion for c in curves[m.name]]),
            _mean_curve([c.insertion for c in curves[m.name]]),
            round(seconds[m.name], 2),
        )
        for m in chosen
    )
    fields = {
        "stages": tuple(g.name for g in groups),
        "titles": stage_titles(model, groups),
        "targets": tuple(int(t) for t in targets),
        "methods": trusts,
        "random_deletion": _mean_curve([c.deletion for c in rand]),
        "random_insertion": _mean_curve([c.insertion for c in rand]),
    }
    return fields, maps


def _answers(model: nn.Module, xs: list[torch.Tensor]) -> list[int]:
    with model_lock(model), torch.inference_mode():
        return model(torch.cat(xs)).argmax(1).tolist()


def _timed(seconds: dict, name: str, model, x, target, method):
    start = time.perf_counter()
    att = saliency.attribute(model, x, target, method)
    seconds[name] += time.perf_counter() - start
    return att


def _u8(heat: np.ndarray) -> np.ndarray:
    return np.round(np.clip(heat, 0, 1) * 255).astype(np.uint8)


def _means(rows: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in rows.mean(1))


def _mean_curve(curves: list[np.ndarray]) -> tuple[float, ...]:
    return tuple(round(float(v), 4) for v in np.mean(curves, 0))


# ------------------------------------------------------------ cache on disk


def report_path(run_dir: Path) -> Path:
    """The report read: the one made here (a shipped run's mirror) if any, else the run's."""
    return _pick(run_dir, REPORT)


def maps_path(run_dir: Path) -> Path:
    return _pick(run_dir, MAPS)


def _pick(run_dir: Path, name: str) -> Path:
    places = mirror.candidates(RunFolder(Path(run_dir)).analysis / name, Path(run_dir))
    return next((p for p in places if p.exists()), places[-1])


def _written(run_dir: Path, name: str) -> Path:
    """Where a new report goes: the run's analysis folder, or a shipped run's mirror."""
    return mirror.writable(RunFolder(Path(run_dir)).analysis / name, Path(run_dir))


def cache_key(run_dir: Path, data, settings: Settings = Settings()) -> dict[str, Any]:
    """What a stored report must have been computed from to be used: weights, images, settings."""
    idx = choose_images(data.val.labels, settings.images)
    pixels = hashlib.sha256(np.ascontiguousarray(data.val.images[idx]).tobytes())
    pixels.update(idx.tobytes())
    return {
        "format": FORMAT,
        "weights": runinfo.weights_hash(RunFolder(Path(run_dir)).weights),
        "images": pixels.hexdigest()[:32],
        "settings": dataclasses.asdict(settings),
        "methods": {m.name: dict(m.defaults) for m in saliency.METHODS},
    }


def load(run_dir: Path, data, settings: Settings = Settings()) -> TrustReport | None:
    """The stored report if it was computed for these weights, images and settings, else None."""
    path = report_path(run_dir)
    if not path.exists():
        return None
    try:
        raw = io.read_json(path, inside=path.parent.parent)
        report = _parse(raw)
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None  # unreadable or of another version: computed again
    return report if report.key == cache_key(run_dir, data, settings) else None


def load_maps(run_dir: Path) -> np.ndarray | None:
    """The strip maps stored with the report (see `check`), or None."""
    path = maps_path(run_dir)
    if not path.exists():
        return None
    try:
        data = io.read_bytes(path, max_bytes=64 * 2**20, inside=path.parent.parent)
        with np.load(pyio.BytesIO(data), allow_pickle=False) as npz:
            return np.asarray(npz["maps"])
    except (CheckpointError, KeyError, ValueError, OSError):
        return None


def compute(
    run_dir: Path,
    data,
    *,
    settings: Settings = Settings(),
    device: str = "cpu",
    progress: Progress | None = None,
) -> TrustReport:
    """Run both checks on the run's model and store them (maps first, the report last)."""
    run_dir = Path(run_dir)
    run = open_run(run_dir)
    if list(run.wnids) != list(data.classes.wnids):
        raise CheckpointError(f"{run.name} was trained on other classes than this data set's")
    key = cache_key(run_dir, data, settings)
    dev = pick_device(device)
    model = load_model(run, device=dev)
    idx = choose_images(data.val.labels, settings.images)
    start = time.perf_counter()
    fields, maps = check(
        model, np.asarray(data.val.images[idx]), settings=settings, progress=progress
    )
    io.save_arrays(_written(run_dir, MAPS), {"maps": maps})
    report = TrustReport(
        run=run.name,
        images=tuple(int(i) for i in idx),
        settings=settings,
        seconds=round(time.perf_counter() - start, 1),
        device=str(dev),
        created=time.strftime("%Y-%m-%d %H:%M:%S"),
        key=key,
        **fields,
    )
    io.write_json(_written(run_dir, REPORT), report.to_json())
    return report


def _parse(raw: dict) -> TrustReport:
    if raw.get("key", {}).get("format") != FORMAT:
        raise ValueError("another format")
    methods = tuple(
        MethodTrust(**{k: tuple(v) if isinstance(v, list) else v for k, v in m.items()})
        for m in raw["methods"]
    )
    plain = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    plain.update(methods=methods, settings=Settings(**raw["settings"]), key=raw["key"])
    return TrustReport(**plain)


# ------------------------------------------------ Integrated Gradients' sum


@dataclass(frozen=True)
class Completeness:
    """Integrated Gradients' completeness (the sum of a map is the score's rise from the
    baseline): what it should be, what it is, and the error relative to it."""

    total: float  # the sum of the attributions
    gap: float  # f(x) - f(baseline): what they should add up to
    delta: float  # total - gap (captum's convergence delta)

    @property
    def relative(self) -> float:
        """|delta| as a share of |f(x) - f(baseline)| (under 5% is good)."""
        return abs(self.delta) / max(abs(self.gap), 1e-6)


def completeness(att: saliency.Attribution) -> Completeness | None:
    """The completeness of an Integrated Gradients map (None for the other methods).

    captum's delta is sum(attributions) - (f(x) - f(baseline)), and `signed` holds the
    attributions summed over colour channels, so f(x) - f(baseline) = sum(signed) - delta.
    """
    if att.delta is None:
        return None
    total = float(np.sum(att.signed, dtype=np.float64))
    return Completeness(total, total - att.delta, float(att.delta))


# ------------------------------------------------------------------ estimate


def estimate_seconds(model: nn.Module, settings: Settings = Settings()) -> float:
    """Roughly how long `compute` takes for this model on its device, from one timed pass.

    Counted in forward-pass equivalents of one image (a backward pass is about two): per
    image and model version, the six methods take about 240 (Integrated Gradients' 32
    steps and Occlusion's 81 patches most), and the curves 34 per method. Calibrated on
    resnet18 on a 2-core CPU (within about 30%).
    """
    per_image = runinfo.forward_seconds(model)
    methods = methods_for(model)
    per_version = 240 if len(methods) == 6 else 237
    versions = len(layer_groups(model)) + 1
    units = settings.images * (
        versions * per_version + (len(methods) + 1) * 2 * (settings.steps + 1)
    )
    return units * per_image * SLOWDOWN


SLOWDOWN = 1.0  # measured / estimated on resnet18-push (bench/explain_speed.py)
