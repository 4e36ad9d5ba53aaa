"""Layout descriptors (near-duplicates) beside the records: ``layout:<id>`` rows of the meta
collection, float16 bytes in base64, written *before* their image's row (so a visible record has
its descriptor) and deleted after it. A descriptor too long for one VARCHAR is not kept (the
image then takes the global-only rule of :mod:`retrieval.index._duplicates`)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError
from retrieval.index.milvus._schema import MAX_VARCHAR

__all__ = ["delete_layouts", "fetch_layouts", "put_layouts"]

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
ROWS_PER_CALL = 64
_DUMMY = [0.0, 0.0]


def _key(image_id: int) -> str:
    return f"layout:{int(image_id)}"


def put_layouts(client: Any, meta: str, ids: Sequence[int], layouts: npt.ArrayLike) -> None:
    rows16 = np.ascontiguousarray(layouts, dtype=np.float16)
    if rows16.ndim != 2 or rows16.shape[0] != len(ids):
        raise ConfigError(f"expected {len(ids)} layout descriptors, got shape {rows16.shape}")
    rows = [{"key": _key(i), "value": base64.b64encode(r.tobytes()).decode("ascii"),
             "dummy": _DUMMY} for i, r in zip(ids, rows16, strict=True)]
    if rows and len(rows[0]["value"]) > MAX_VARCHAR:
        log.warning("layout descriptors of %d values do not fit a Milvus VARCHAR: not kept",
                    rows16.shape[1])
        return
    for start in range(0, len(rows), ROWS_PER_CALL):
        client.upsert(meta, rows[start:start + ROWS_PER_CALL])


def fetch_layouts(client: Any, meta: str, ids: Sequence[int]) -> dict[int, F32]:
    """The descriptors of ``ids`` that have one, as float32."""
    out: dict[int, F32] = {}
    keys = [_key(i) for i in ids]
    for start in range(0, len(keys), ROWS_PER_CALL * 4):
        for row in client.get(meta, ids=keys[start:start + ROWS_PER_CALL * 4],
                              output_fields=["value"]):
            data = base64.b64decode(row["value"])
            out[int(str(row["key"]).split(":", 1)[1])] = (
                np.frombuffer(data, dtype=np.float16).astype(np.float32))
    return out


def delete_layouts(client: Any, meta: str, ids: Sequence[int]) -> None:
    if ids:
        client.delete(meta, ids=[_key(i) for i in ids])
