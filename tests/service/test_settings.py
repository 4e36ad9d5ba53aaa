"""Settings come from CBIR_* variables; blank optional ones mean "not set"."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_environment_is_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("CBIR_INDEX_DIR", str(tmp_path))
    monkeypatch.setenv("CBIR_MAX_K", "7")
    monkeypatch.setenv("CBIR_CORS_ORIGINS", "http://a.example, http://b.example")
    settings = Settings()
    assert settings.index_dir == tmp_path and settings.max_k == 7
    assert settings.cors_origins == ["http://a.example", "http://b.example"]
    assert settings.uploads_dir == tmp_path / "data"
    assert not settings.writes_enabled


def test_blank_optional_values_are_unset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CBIR_WEIGHTS", "CBIR_DATA_DIR", "CBIR_API_KEY"):
        monkeypatch.setenv(name, "")
    settings = Settings(index_dir=tmp_path)
    assert settings.weights is None and settings.data_dir is None and settings.api_key is None


def test_invalid_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="max_k"):
        Settings(index_dir=tmp_path, max_k=0)
