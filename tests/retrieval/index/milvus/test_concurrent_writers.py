"""Two OS processes add to one Milvus server collection at once, with no lock between them.

Ids are tickets from Milvus's id allocator (``retrieval/index/milvus/_ids.py``): every image a
writer was told is stored must be stored once, under the id it was given, and no id may be given
twice. (With the counter row that came before, both writers read the same ``next_id`` and
overwrote each other's images.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from retrieval.index import StoreSpec, create_index, open_index
from tests.conftest import REPO
from tests.retrieval.index.samples import manifest

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")

BATCHES, PER_BATCH = 8, 25
WRITER = """
import json, sys
from retrieval.index import open_index
from tests.retrieval.index.samples import images, unit_vectors
first, path = int(sys.argv[1]), sys.argv[2]
with open_index(path) as index:
    acknowledged = []
    for b in range(BATCHES):
        start = first + b * PER_BATCH
        ids = index.add(images(PER_BATCH, start=start), unit_vectors(PER_BATCH, start))
        acknowledged += [[i, f"img/{start + j:05d}.jpg"] for j, i in enumerate(ids)]
print(json.dumps(acknowledged))
""".replace("BATCHES", str(BATCHES)).replace("PER_BATCH", str(PER_BATCH))


@pytest.mark.milvus_server
def test_two_writer_processes_get_distinct_ids(milvus_server: str, tmp_path: Path) -> None:
    path = tmp_path / "index"
    create_index(path, manifest(), StoreSpec("milvus", milvus_server,
                                             f"w_{uuid.uuid4().hex[:8]}")).close()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(first), str(path)], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for first in (0, 10_000)]
    acknowledged: list[tuple[int, str]] = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        acknowledged += [(int(i), str(p)) for i, p in json.loads(out)]

    ids = [i for i, _ in acknowledged]
    assert len(ids) == 2 * BATCHES * PER_BATCH and len(set(ids)) == len(ids)
    with open_index(path, read_only=True) as index:
        assert index.count == len(ids)
        stored = {r.id: r.path for r in index.records(ids)}
        assert stored == dict(acknowledged)
        assert index.paths_present() == {p for _, p in acknowledged}
