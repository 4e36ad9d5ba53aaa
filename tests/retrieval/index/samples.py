"""Vectors, images and manifests the index tests share (not a test module)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from retrieval.index import Manifest, NewImage, StoreSpec

F32 = npt.NDArray[np.float32]
D = 16


def unit_vectors(n: int, seed: int, d: int = D) -> F32:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


def images(n: int, start: int = 0) -> list[NewImage]:
    return [NewImage(f"img/{i:05d}.jpg", f"{i:064x}", 64, 48) for i in range(start, start + n)]


def manifest(factory: str = "Flat", d: int = D, **changes: Any) -> Manifest:
    return Manifest(backbone="vgg16", weights="random:seed=0", max_side=256, pooling="gem",
                    pooling_params={"p": 3.0}, dim=d, faiss_factory=factory, **changes)


def brute_force(ids: npt.NDArray[np.int64], xb: F32, xq: F32, k: int) -> tuple[F32, Any]:
    scores = xq @ xb.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), ids[order]


def lite_or_faiss(kind: str, tmp_path: Path) -> StoreSpec:
    """The store spec of a fresh index: ``faiss`` (the directory) or a new Milvus Lite collection
    (skipped without the milvus extra)."""
    if kind == "faiss":
        return StoreSpec()
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")
    return StoreSpec("milvus", str(tmp_path / "m.db"), f"c_{uuid.uuid4().hex[:10]}")
