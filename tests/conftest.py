"""Shared fixtures: a generated few-class data set (zip and folder) and an isolated cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import tinydata  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """Every test gets its own cache root and no data set from the environment."""
    monkeypatch.setenv("TINYVIZ_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.delenv("TINYVIZ_DATA", raising=False)


@pytest.fixture(scope="session")
def tiny_files():
    return tinydata.make_files()


@pytest.fixture(scope="session")
def tiny_zip(tmp_path_factory, tiny_files) -> Path:
    return tinydata.write_zip(tmp_path_factory.mktemp("zip") / "tiny-imagenet-200.zip",
                              tiny_files)


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory, tiny_files) -> Path:
    return tinydata.write_folder(tmp_path_factory.mktemp("folder"), tiny_files)
