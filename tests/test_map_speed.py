"""The Embeddings page's estimate of a t-SNE or UMAP map (issue 21.6): the measured curves,
scaled by what this machine's map processes recorded."""

from __future__ import annotations

import pytest

from tinyviz.explain import map_speed


@pytest.fixture(autouse=True)
def own_records(tmp_path, monkeypatch):
    """A cache root of this test's own: the worker's other tests record the maps they made."""
    monkeypatch.setenv("TINYVIZ_CACHE", str(tmp_path / "cache"))


def test_the_curves_pass_through_their_measurements_and_grow_with_the_points():
    for method, points in map_speed.CURVES.items():
        for n, seconds in points:
            assert map_speed.curve(method, 2, n) == pytest.approx(seconds)
        sizes = [10, 100, 350, 700, 1000, 5000, 10_000, 100_000]
        got = [map_speed.curve(method, 2, n) for n in sizes]
        assert got == sorted(got) and got[0] > 0
        assert map_speed.curve(method, 3, 350) > map_speed.curve(method, 2, 350)


def test_an_estimate_follows_what_this_machine_measured():
    before = map_speed.estimate("tsne", 2, 350)
    assert before == pytest.approx(
        map_speed.STARTUP + map_speed.curve("tsne", 2, 350) + map_speed.PAGE
    )
    # twice as slow as the curve at fitting, 6 s to start
    for n in (100, 350, 2000):
        map_speed.record("tsne", 2, n, 6.0, 2 * map_speed.curve("tsne", 2, n))
    assert map_speed.startup_seconds() == pytest.approx(6.0)
    assert map_speed.fit_seconds("tsne", 2, 1000) == pytest.approx(
        2 * map_speed.curve("tsne", 2, 1000), rel=1e-3
    )
    assert map_speed.fit_seconds("umap", 2, 1000) == pytest.approx(
        map_speed.curve("umap", 2, 1000)
    )  # another method: its own record
    assert map_speed.estimate("tsne", 2, 1000, fits=3) == pytest.approx(
        6.0 + 3 * 2 * map_speed.curve("tsne", 2, 1000) + map_speed.PAGE, rel=1e-3
    )
    # maps of about as many points calibrate it: a curve off for large maps only
    map_speed.record("tsne", 2, 10_000, None, 0.5 * map_speed.curve("tsne", 2, 10_000))
    assert map_speed.fit_seconds("tsne", 2, 8000) == pytest.approx(
        0.5 * map_speed.curve("tsne", 2, 8000), rel=1e-3
    )
    assert map_speed.fit_seconds("tsne", 2, 350) == pytest.approx(
        2 * map_speed.curve("tsne", 2, 350), rel=1e-3
    )
    # the closest sizes measured win over those three times off
    map_speed.record("tsne", 2, 4000, None, 0.25 * map_speed.curve("tsne", 2, 4000))
    assert map_speed.fit_seconds("tsne", 2, 4000) == pytest.approx(
        0.25 * map_speed.curve("tsne", 2, 4000), rel=1e-3
    )


def test_the_record_is_bounded_and_a_broken_one_is_no_record():
    for i in range(3 * map_speed.KEEP):
        map_speed.record("umap", 3, 100 + i, None if i % 2 else 1.0, 5.0)
    raw = map_speed._read()
    assert len(raw["umap3d"]) == map_speed.KEEP
    assert raw["umap3d"][-1][0] == 100 + 3 * map_speed.KEEP - 1
    assert len(raw[map_speed.STARTUPS]) <= map_speed.KEEP
    map_speed.path().write_text("{not json")
    assert map_speed.startup_seconds() == map_speed.STARTUP
    assert map_speed.fit_seconds("umap", 3, 100) == pytest.approx(map_speed.curve("umap", 3, 100))
    map_speed.record("umap", 3, 100, 2.0, 1.0)  # written anew
    assert map_speed.startup_seconds() == 2.0


def test_a_running_worker_is_estimated_without_its_startup_and_umap_without_compiling():
    cold = map_speed.estimate("umap", 2, 350)
    fresh = map_speed.estimate("umap", 2, 350, worker=frozenset({"tsne"}))
    warm = map_speed.estimate("umap", 2, 350, worker=frozenset({"umap"}))
    assert fresh == pytest.approx(cold - map_speed.STARTUP)  # running, but UMAP not compiled
    assert cold == pytest.approx(
        map_speed.STARTUP + map_speed.curve("umap", 2, 350) + map_speed.PAGE
    )
    assert warm == pytest.approx(
        map_speed.curve("umap", 2, 350) - map_speed.COMPILE["umap"] + map_speed.PAGE
    )
    assert map_speed.estimate("tsne", 2, 350, worker=frozenset()) == pytest.approx(
        map_speed.curve("tsne", 2, 350) + map_speed.PAGE
    )  # t-SNE compiles nothing
    map_speed.record("umap", 2, 350, None, 4.0, warm=True)  # warm fits calibrate warm ones
    assert map_speed.fit_seconds("umap", 2, 350, warm=True) == pytest.approx(4.0)
    assert map_speed.fit_seconds("umap", 2, 350) == pytest.approx(map_speed.curve("umap", 2, 350))
