"""A run across its epochs: the views `--epoch-views` kept, their analyses, and maps aligned.

At each chosen epoch the trainer keeps a light view in `RUN/epochs/E/` (`RunFolder.epoch_view`):
the weights in half precision and that epoch's analysis, the same pass and compact files as
the finished run's (`tinyviz.explain.analysis` with `epoch=E`). Everything the explain pages
derive from an analysis (confusion, per-class accuracy, channels' top images, maps) is then
derived from an epoch's in the same way: `open_analysis` gives the same `Analysis` and
`ValOutputs` the pages already draw.

Maps of the features (PCA, t-SNE, UMAP) of two epochs are each fitted on their own, so the
same images land in unrelated places: rotated, mirrored, scaled, shifted. `aligned_maps` fits
each epoch's map onto the previous epoch's (already aligned) one by orthogonal Procrustes with
scale and translation on the images both maps show, so that on the slider points move rather
than jump; the fitted `Alignment` also places anything else drawn on that map (an uploaded
image, training images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import orthogonal_procrustes

from .. import io
from ..errors import CheckpointError
from ..runs.folder import MAX_WEIGHTS, Run, RunFolder, open_run
from . import analysis, embed

FINAL = "final"  # the stop of the slider that is the run's own weights


@dataclass(frozen=True)
class EpochView:
    """One kept epoch: its number, its validation top-1 as the trainer measured it at that
    epoch (None if `metrics.jsonl` has no row for it), and its stored analysis on a data set
    (the full set, else the stratified subset; None while there is none)."""

    epoch: int
    top1: float | None
    folder: Path | None

    @property
    def analysed(self) -> bool:
        return self.folder is not None


def views(run: Run | Path, data=None) -> tuple[EpochView, ...]:
    """The run's epoch views in epoch order, each with its stored analysis of `data` (none
    looked for without `data`). Reads files only: nothing is computed. A view whose weights
    file is no safetensors file (its header, as `open_run` checks the run's own) is left
    out: a run folder can come from someone else. Pages pass their opened `Run`; a path is
    opened here."""
    run = run if isinstance(run, Run) else open_run(Path(run))
    top1 = {m.epoch: m.val_top1 for m in run.metrics}
    found = []
    for epoch in filter(lambda e: _holds_weights(run.folder, e), run.epoch_views()):
        folder = None if data is None else _available(run.path, data, epoch)
        found.append(EpochView(epoch, top1.get(epoch), folder))
    return tuple(found)


def _holds_weights(folder: RunFolder, epoch: int) -> bool:
    """The view's weights file has a safetensors header (the tensors are checked on load)."""
    try:
        io.safetensors_header(
            folder.epoch_weights(epoch), max_bytes=MAX_WEIGHTS, inside=folder.path
        )
    except CheckpointError:
        return False
    return True


def _available(run_dir: Path, data, epoch: int) -> Path | None:
    try:
        return analysis.available(run_dir, data, epoch=epoch)
    except CheckpointError:  # the view's weights went away while we looked
        return None


def open_analysis(
    run_dir: Path,
    data,
    epoch: int,
    *,
    compute: bool = False,
    device: str = "cpu",
    progress: analysis.Progress | None = None,
) -> analysis.Analysis:
    """Epoch `epoch`'s stored analysis (full set, else subset); with `compute`, the full one,
    computed first where it is missing (the command line and tests; pages never compute).
    A one-line `CheckpointError` when the run has no such view or (without `compute`) it
    has no analysis yet."""
    run_dir = Path(run_dir)
    if epoch not in RunFolder(run_dir).epoch_views():
        raise CheckpointError(f"{run_dir.name} has no view of epoch {epoch}")
    if compute:
        folder = analysis.compute(run_dir, data, device=device, progress=progress, epoch=epoch)
    else:
        folder = _available(run_dir, data, epoch)
        if folder is None:
            raise CheckpointError(
                f"epoch {epoch} of {run_dir.name} has no analysis yet: `tinyviz analyse "
                f"{run_dir}` computes it"
            )
    return analysis.read(folder)


def val_outputs(run_dir: Path, data, epoch: int, **kw) -> analysis.ValOutputs:
    """`open_analysis(...).outputs`: the epoch's outputs, as the pages use them."""
    return open_analysis(run_dir, data, epoch, **kw).outputs


def compute_missing(
    run_dir: Path,
    data,
    *,
    device: str = "cpu",
    progress_for=None,
    wait: bool = True,
) -> list[int]:
    """Compute the analysis of every epoch view that has none (a run killed during one, a
    run copied without them); returns the epochs computed. `progress_for(epoch)` gives
    each pass's progress callback."""
    done = []
    for view in views(run_dir, data):
        if view.folder is None or view.folder.name == analysis.SUBSET:
            bar = progress_for(view.epoch) if progress_for else None
            analysis.compute(
                run_dir, data, device=device, progress=bar, epoch=view.epoch, wait=wait
            )
            done.append(view.epoch)
    return done


def copy_analyses(src_run: Path, dest_run: Path) -> int:
    """Copy the complete analyses of `src_run`'s epoch views into `dest_run`'s copies of
    those views (`tinyviz export`), compact files only; returns how many were copied.

    The export copies a view's weights byte for byte, so their digest, which names the
    analysis folder, holds for the copy; a view the copy lacks is skipped."""
    src, dest = RunFolder(Path(src_run)), RunFolder(Path(dest_run))
    copied = 0
    for epoch in set(src.epoch_views()) & set(dest.epoch_views()):
        root = src.epoch_analysis(epoch)
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            if folder.is_symlink() or not folder.is_dir() or not analysis.is_complete(folder):
                continue
            target = dest.epoch_analysis(epoch) / folder.name
            for name, bound in ((analysis.COMPACT, io.MAX_ARRAY), (analysis.META, io.MAX_JSON)):
                data = io.read_bytes(folder / name, max_bytes=bound, inside=src.path)
                io.write_bytes(target / name, data)  # meta.json last: complete once it is there
            copied += 1
    return copied


# ------------------------------------------------------------------ alignment


@dataclass(frozen=True, eq=False)
class Alignment:
    """`scale * (x - centre) @ rotation + shift`: a map's coordinates in the frame of the
    map it was aligned to (rotation orthogonal, mirror images included)."""

    scale: float
    rotation: np.ndarray  # (d, d)
    centre: np.ndarray  # (d,)
    shift: np.ndarray  # (d,)

    @classmethod
    def identity(cls, dims: int) -> Alignment:
        zero = np.zeros(dims, np.float64)
        return cls(1.0, np.eye(dims), zero, zero)

    def apply(self, coords: np.ndarray) -> np.ndarray:
        x = np.asarray(coords, np.float64)
        return (self.scale * (x - self.centre) @ self.rotation + self.shift).astype(np.float32)


def procrustes(coords: np.ndarray, reference: np.ndarray) -> Alignment:
    """The similarity (rotation or mirror, one scale, a shift) that takes `coords` closest to
    `reference` in least squares: orthogonal Procrustes on the centred points, then the
    scale that minimises the rest. Points in matching rows, (N, d) both."""
    x, y = np.asarray(coords, np.float64), np.asarray(reference, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"two maps of the same points are needed, not {x.shape} and {y.shape}")
    dims = x.shape[1]
    if len(x) < dims + 1:  # too few points to fix a rotation: leave the map as it is
        return Alignment.identity(dims)
    centre, target = x.mean(0), y.mean(0)
    xc, yc = x - centre, y - target
    spread = float((xc**2).sum())
    if spread <= 0 or not np.isfinite(spread):
        return Alignment(1.0, np.eye(dims), centre, target)
    rotation, singular_sum = orthogonal_procrustes(xc, yc)
    return Alignment(float(singular_sum) / spread, rotation, centre, target)


def align(
    coords: np.ndarray, images: np.ndarray, ref_coords: np.ndarray, ref_images: np.ndarray
) -> Alignment:
    """The `procrustes` fit of one map onto another over the validation images both show
    (`images[i]` is the image at `coords[i]`): an epoch's subset and the next epoch's full
    set, or different selections, share only some points."""
    _, mine, theirs = np.intersect1d(
        np.asarray(images), np.asarray(ref_images), assume_unique=True, return_indices=True
    )
    return procrustes(np.asarray(coords)[mine], np.asarray(ref_coords)[theirs])


@dataclass(frozen=True, eq=False)
class AlignedMap:
    """One stop's map drawn in the first stop's frame: the map as `embed` stores it with its
    coordinates aligned, the alignment used (for anything else placed on it), and the
    validation image of each point."""

    stop: int | str  # an epoch, or FINAL
    embedding: embed.Embedding
    alignment: Alignment
    images: np.ndarray


def aligned_maps(
    run_dir: Path,
    data,
    sources: Sequence[tuple[int | str, analysis.Analysis | Path]],
    method: str,
    dims: int,
    *,
    classes: list[int] | None = None,
    device: str = "cpu",
    progress: analysis.Progress | None = None,
    seed: int = 0,
) -> list[AlignedMap]:
    """The map of each stop's analysis (`(stop, analysis or its folder)` in epoch order, e.g.
    the views then FINAL), each aligned onto the previous stop's aligned map. Maps come from
    `embed.cached_embedding` (stored beside each analysis: computed once); the
    alignment is a few matrix products."""
    out: list[AlignedMap] = []
    for k, (stop, where) in enumerate(sources):
        source = analysis.read(where) if isinstance(where, Path) else where
        emb = embed.cached_embedding(
            Path(run_dir),
            data,
            method,
            dims,
            classes=classes,
            device=device,
            seed=seed,
            source=source,
            progress=_part(progress, k, len(sources), stop),
        )
        images = np.asarray(source.outputs.image_index(emb.indices), np.int64)
        if out:
            prev = out[-1]
            fit = align(emb.coords, images, prev.embedding.coords, prev.images)
        else:
            fit = Alignment.identity(dims)
        moved = embed.Embedding(
            emb.method,
            emb.dims,
            fit.apply(emb.coords),
            emb.indices,
            emb.explained_variance,
            {**emb.params, "aligned_to": out[-1].stop if out else None},
        )
        out.append(AlignedMap(stop, moved, fit, images))
    return out


def _part(progress: analysis.Progress | None, k: int, n: int, stop: int | str):
    if progress is None:
        return None
    what = "the final weights" if stop == FINAL else f"epoch {stop}"
    return lambda f, msg: progress((k + f) / n, f"map of {what} ({k + 1} of {n}): {msg}")


def chain(
    run_dir: Path, data, stop: int | str, final: analysis.Analysis
) -> list[tuple[int | str, analysis.Analysis | Path]]:
    """The analyses a stop's aligned map goes through: the folder of every analysed view up
    to `stop`, then `final` when the stop is FINAL (the run's own analysis, as the page drew
    it)."""
    up_to = float("inf") if stop == FINAL else int(stop)
    found: list[tuple[int | str, analysis.Analysis | Path]] = [
        (v.epoch, v.folder)
        for v in views(run_dir, data)
        if v.folder is not None and v.epoch <= up_to
    ]
    if stop == FINAL:
        found.append((FINAL, final))
    elif not found or found[-1][0] != stop:
        raise CheckpointError(f"{Path(run_dir).name} has no analysed view of epoch {stop}")
    return found


def map_at(
    run_dir: Path,
    data,
    stop: int | str,
    method: str,
    dims: int,
    *,
    final: analysis.Analysis,
    classes: list[int] | None = None,
    device: str = "cpu",
    progress: analysis.Progress | None = None,
    seed: int = 0,
) -> AlignedMap:
    """The map of one stop of the slider (an epoch or FINAL) in the frame of the first
    view's map, aligned epoch by epoch through the views before it (`aligned_maps`)."""
    sources = chain(run_dir, data, stop, final)
    return aligned_maps(
        run_dir,
        data,
        sources,
        method,
        dims,
        classes=classes,
        device=device,
        progress=progress,
        seed=seed,
    )[-1]


def maps_stored(
    run_dir: Path,
    data,
    stop: int | str,
    method: str,
    dims: int,
    *,
    final: analysis.Analysis,
    classes: list[int] | None = None,
    seed: int = 0,
) -> bool:
    """Whether `map_at` would only read maps (each stop's is stored beside its analysis)."""
    return all(
        embed.stored_in(
            where if isinstance(where, Path) else where.folder,
            method,
            dims,
            classes=classes,
            seed=seed,
        )
        for _, where in chain(run_dir, data, stop, final)
    )
