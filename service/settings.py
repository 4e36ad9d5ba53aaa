"""Service settings: ``CBIR_*`` environment variables (or keyword arguments, which win).

================================  =====================  ==========================================
setting (environment variable)    default                meaning
================================  =====================  ==========================================
index_dir (CBIR_INDEX_DIR)        required               index directory to serve
device (CBIR_DEVICE)              ``cpu``                torch device for the backbone
precision (CBIR_PRECISION)        the index's            fp32, bf16, fp16, int8 or auto (README)
weights (CBIR_WEIGHTS)            none                   weights file (checked against the manifest)
allow_download (…)                false                  let torchvision download weights at start
host / port (CBIR_HOST, …_PORT)   127.0.0.1 / 8000       where ``python -m service`` listens
max_upload_bytes                  20 MiB                 largest request body (413 beyond)
max_image_pixels                  40 000 000             largest decoded image (422 beyond)
max_k                             100                    largest ``k`` of a search (422 beyond)
api_key (CBIR_API_KEY)            none                   enables POST/DELETE/PATCH /images (Bearer)
workers                           2                      inference threads
queue_depth                       16                     requests waiting beyond ``workers`` (503)
cors_origins                      none                   allowed origins: JSON list or a,b,c
data_dir (CBIR_DATA_DIR)          <index_dir>/data       where uploaded images are stored
thumbnail_cache_bytes             32 MiB                 in-memory LRU of JPEG thumbnails
nprobe / ef_search                the index's            IVF lists probed, HNSW candidate list size
header_timeout_s                  10                     seconds to send a request's headers
body_timeout_s                    30                     longest pause between body bytes
body_deadline_s                   120                    seconds to send a whole body (a total)
keep_alive_s                      5                      idle keep-alive connections closed after
max_connections                   256                    open connections; requests beyond get a
                                                         JSON 503 with Retry-After
idempotency_ttl_s                 86400                  how long Idempotency-Key answers are kept
absolute_paths                    false                  show absolute server paths in answers
follow_interval_s                 1                      read-only server: store polled this often
store_uri (CBIR_STORE_URI)        none                   with collection: start from a Milvus store
collection (CBIR_COLLECTION)      none                   (manifest + state copied into index_dir,
                                                         default <tmp>/cbir-<collection>)
engine_cache (CBIR_ENGINE_CACHE)  ~/.cache/cbir          read-only server: its int8 engine cache
                                                         ($XDG_CACHE_HOME/cbir when that is set)
================================  =====================  ==========================================

Without ``api_key`` the server opens the index read-only (no write lock) and follows what
``cbir index`` commands commit; with it the server owns the index and is its only writer.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from retrieval.index import UPLOADS_DIR_NAME

__all__ = ["Settings"]


def _user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cbir``, or ``~/.cache/cbir``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cbir"


MIB = 1024 * 1024
#: retrieval.features.PrecisionChoice, spelled out so settings stay free of torch
PrecisionChoice = Literal["fp32", "bf16", "fp16", "int8", "auto"]


class Settings(BaseSettings):
    """Everything the service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="CBIR_", extra="ignore", frozen=True)

    index_dir: Path
    device: str = "cpu"
    precision: PrecisionChoice | None = None  # None: the precision the index was built with
    weights: Path | None = None
    allow_download: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    max_upload_bytes: int = Field(default=20 * MIB, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_k: int = Field(default=100, ge=1)
    api_key: SecretStr | None = None
    workers: int = Field(default=2, ge=1)
    queue_depth: int = Field(default=16, ge=0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    data_dir: Path | None = None
    thumbnail_cache_bytes: int = Field(default=32 * MIB, ge=0)
    nprobe: int | None = Field(default=None, ge=1)
    ef_search: int | None = Field(default=None, ge=1)
    header_timeout_s: float = Field(default=10.0, gt=0)
    body_timeout_s: float = Field(default=30.0, gt=0)
    body_deadline_s: float = Field(default=120.0, gt=0)
    keep_alive_s: int = Field(default=5, ge=1)
    max_connections: int = Field(default=256, ge=1)
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    absolute_paths: bool = False
    follow_interval_s: float = Field(default=1.0, gt=0)
    store_uri: str | None = None
    collection: str | None = None
    engine_cache: Path = Field(default_factory=_user_cache_dir)

    @model_validator(mode="before")
    @classmethod
    def _replica_dir(cls, data: Any) -> Any:
        """A replica started from CBIR_STORE_URI + CBIR_COLLECTION needs no index directory."""
        if (isinstance(data, dict) and data.get("store_uri") and data.get("collection")
                and not data.get("index_dir")):
            return {**data, "index_dir": Path(tempfile.gettempdir()) / f"cbir-{data['collection']}"}
        return data

    @model_validator(mode="after")
    def _store_pair(self) -> Settings:
        if bool(self.store_uri) != bool(self.collection):
            raise ValueError("CBIR_STORE_URI and CBIR_COLLECTION go together")
        return self

    @field_validator("api_key", "weights", "data_dir", "nprobe", "ef_search", "precision",
                     mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded images are written (``data_dir``, default ``<index_dir>/data``)."""
        return self.data_dir if self.data_dir is not None else self.index_dir / UPLOADS_DIR_NAME

    @property
    def writes_enabled(self) -> bool:
        return self.api_key is not None
