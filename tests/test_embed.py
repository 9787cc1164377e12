"""Feature maps (PCA, t-SNE, UMAP), placing new images, neighbours, display helpers."""

from __future__ import annotations

import base64
import shutil

import numpy as np
import pytest

from tinyviz.explain import analysis, embed


def blobs(n_per: int = 20, classes: int = 3, dim: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 10, (classes, dim))
    labels = np.repeat(np.arange(classes), n_per)
    return (centres[labels] + rng.normal(0, 1, (len(labels), dim))).astype(np.float32), labels


def separated(coords: np.ndarray, labels: np.ndarray) -> bool:
    """Every point's nearest other point on the map has its class."""
    d = ((coords[:, None] - coords[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return bool((labels[d.argmin(1)] == labels).all())


def test_pca_reports_explained_variance():
    feats, labels = blobs()
    for dims in (2, 3):
        emb = embed.embed(feats, "pca", dims)
        assert emb.coords.shape == (60, dims) and emb.coords.dtype == np.float32
        assert emb.indices.tolist() == list(range(60))
        ev = emb.explained_variance
        assert len(ev) == dims and (np.diff(ev) <= 0).all() and ev.sum() <= 1
    assert separated(emb.coords, labels)


def test_tsne_separates_clusters_and_reports_progress():
    feats, labels = blobs()
    seen, said = [], []
    emb = embed.embed(feats, "tsne", 2, progress=lambda f, m: (seen.append(f), said.append(m)))
    assert emb.coords.shape == (60, 2) and emb.explained_variance is None
    assert emb.params["perplexity"] <= 30 and seen[-1] == 1.0 and seen == sorted(seen)
    # the page shows it after "computing in the background: ": a stage in words
    assert said[0] == f"PCA to {embed.PRE_PCA} dimensions first"
    assert separated(emb.coords, labels)
    assert embed.embed(feats, "tsne", 3).coords.shape == (60, 3)


def test_bad_arguments():
    feats, _ = blobs()
    with pytest.raises(ValueError):
        embed.embed(feats, "isomap", 2)
    with pytest.raises(ValueError):
        embed.embed(feats, "pca", 4)
    with pytest.raises(ValueError):
        embed.neighbours(feats, feats[0], metric="manhattan")


@pytest.fixture
def own_run(run_data, tmp_path):
    """A copy of the tiny run without any cached analysis or map: what a test finds on disk
    and in memory is only what it made itself, whatever ran before it."""
    run, data = run_data
    copy = tmp_path / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("analysis"))
    embed._FITTED.clear()
    return copy, data


def test_cached_maps_are_stored_and_placed(own_run):
    run, data = own_run
    out = analysis.val_outputs(run, data)
    first = []
    emb = embed.cached_embedding(run, data, "pca", 2, progress=lambda f, m: first.append(f))
    assert first and first[-1] == 1.0  # computed here, with progress
    calls = []
    again = embed.cached_embedding(run, data, "pca", 2, progress=lambda f, m: calls.append(f))
    assert calls == [] and np.array_equal(again.coords, emb.coords)
    np.testing.assert_allclose(again.explained_variance, emb.explained_variance)
    placed = embed.place(run, data, "pca", 2, out.features[:3])
    assert placed.how == "projection" and placed.how in embed.HOW
    np.testing.assert_allclose(placed.coords, emb.coords[:3], atol=1e-3)


def test_class_subset_map(own_run):
    run, data = own_run
    out = analysis.val_outputs(run, data)
    emb = embed.cached_embedding(run, data, "tsne", 2, classes=[2, 0])
    assert set(out.labels[emb.indices]) == {0, 2}
    assert len(emb.indices) == int(np.isin(out.labels, [0, 2]).sum())
    assert emb.params["classes"] == [0, 2]
    placed = embed.place(run, data, "tsne", 2, out.features[emb.indices[:2]], classes=[0, 2])
    assert placed.how == "transform" and placed.coords.shape == (2, 2)
    spread = np.ptp(emb.coords, 0).max()
    assert np.abs(placed.coords - emb.coords[:2]).max() < 0.5 * spread


def test_map_loaded_from_disk_places_by_neighbours(own_run):
    run, data = own_run
    out = analysis.val_outputs(run, data)
    emb = embed.cached_embedding(run, data, "tsne", 2, classes=[0, 2])
    embed._FITTED.clear()  # as after a restart: the map is on disk, its model is not in memory
    placed = embed.place(run, data, "tsne", 2, out.features[emb.indices[:1]], classes=[0, 2])
    assert placed.how == "neighbours"
    np.testing.assert_allclose(placed.coords[0], emb.coords[0], atol=1e-2)  # its own twin


@pytest.mark.slow
def test_umap_map_and_placement(run_data):
    """umap-learn's numba functions compile on first use in a process (10-40 s)."""
    run, data = run_data
    out = analysis.val_outputs(run, data)
    emb = embed.cached_embedding(run, data, "umap", 2)
    assert emb.coords.shape == (len(out), 2) and np.isfinite(emb.coords).all()
    placed = embed.place(run, data, "umap", 2, out.features[:1])
    assert placed.how == "neighbours" and np.isfinite(placed.coords).all()


def test_neighbours_cosine_and_euclidean():
    feats = np.array([[1, 0], [0, 1], [1, 1], [10, 0.5]], np.float32)
    idx, dist = embed.neighbours(feats, np.array([2, 0.1]), k=2)
    assert idx.tolist() == [3, 0] and dist.shape == (2,) and dist[0] <= dist[1]
    idx, dist = embed.neighbours(feats, np.array([[2, 0.1], [0, 2]]), k=2, metric="euclidean")
    assert idx.tolist() == [[0, 2], [1, 2]] and dist.shape == (2, 2)
    np.testing.assert_allclose(dist[0, 0], np.hypot(1, 0.1), rtol=1e-5)
    assert embed.neighbours(feats, feats[0], k=10)[0].shape == (4,)


def test_place_by_neighbours_interpolates():
    feats = np.array([[1, 0], [0, 1]], np.float32)
    coords = np.array([[0, 0], [10, 10]], np.float32)
    assert embed.place_by_neighbours(feats, coords, feats[:1], k=1).tolist() == [[0, 0]]
    mid = embed.place_by_neighbours(feats, coords, np.array([[1, 1]], np.float32), k=2)
    np.testing.assert_allclose(mid, [[5, 5]], atol=1e-3)


def test_thumbnails_are_small_jpeg_data_uris(run_data):
    images = run_data[1].val.images
    uris = embed.thumbnails(images, np.array([0, 3]), size=32)
    assert len(uris) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in uris)
    assert all(len(base64.b64decode(u.split(",", 1)[1])) < 3000 for u in uris)
