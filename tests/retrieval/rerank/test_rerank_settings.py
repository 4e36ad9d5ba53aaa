"""Bounds of the re-ranking settings."""

from __future__ import annotations

import pytest

from retrieval.errors import ConfigError
from retrieval.rerank import MAX_RERANK_K, Rerank


def test_rerank_bounds() -> None:
    assert Rerank(qe_k=2, dba_k=MAX_RERANK_K).dba_k == 50
    with pytest.raises(ConfigError, match="qe_k"):
        Rerank(qe_k=-1)
    with pytest.raises(ConfigError, match="dba_k"):
        Rerank(dba_k=MAX_RERANK_K + 1)
    with pytest.raises(ConfigError, match="qe_k"):
        Rerank(qe_k=True)
    with pytest.raises(ConfigError, match="qe_alpha"):
        Rerank(qe_alpha=float("nan"))
    with pytest.raises(ConfigError, match="dba_alpha"):
        Rerank(dba_alpha=101)
