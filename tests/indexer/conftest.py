"""Every CLI test keeps the user cache (``$XDG_CACHE_HOME/cbir``: int8 engines of read-only
opens) in its own temporary folder, never in the home directory of whoever runs the tests; and
``empty_ivf``, the index an interrupted build of a large folder into an IVF leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval import Embedder, EmbedderConfig, create_collection


@pytest.fixture(autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path_factory.mktemp("xdg-cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


@pytest.fixture()
def empty_ivf(tmp_path: Path) -> Path:
    """An empty IVF16 index, as an interrupted build of a large folder leaves one."""
    config = EmbedderConfig(backbone="squeezenet1_1", weights="random", max_side=64)
    create_collection(tmp_path / "ivf", Embedder.create(config), factory="IVF16,Flat").close()
    return tmp_path / "ivf"
