"""``cbir index migrate`` both ways (FAISS+SQLite -> Milvus Lite or the session's Milvus server
-> FAISS+SQLite) copies records, ids, vectors, layouts and fitted state without embedding, and the
copies answer every search as the original does; what Milvus cannot keep is one readable line.
``cbir index export`` writes a Parquet file that reads back as the stored records and vectors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from indexer.cli import main
from retrieval.index import ImageIndex, open_index
from tests.indexer.watching import BUILD, photo

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
pytest.importorskip("milvus_lite", reason="pip install -e '.[milvus]'")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An index with fitted state (PCA-whitening) and layouts, over 10 photos."""
    root = tmp_path_factory.mktemp("migrate")
    images = root / "photos"
    for i in range(10):
        photo(images / f"m{i:02d}.jpg", 1100 + i, (96, 72))
    index = root / "index"
    assert main(["index", "build", "--images", str(images), "--index", str(index), *BUILD,
                 "--pooling", "gem", "--whiten", "--whiten-dim", "8"]) == 0
    return images, index


def searches(index: Path, images: Path, capsys: pytest.CaptureFixture[str]) -> list[object]:
    """Every photo as a query (embedded with the index's own fitted state), top 5."""
    capsys.readouterr()
    queries = sorted(str(p) for p in images.glob("*.jpg"))
    assert main(["index", "info", "--index", str(index)]) == 0
    capsys.readouterr()
    assert main(["search", "--index", str(index), *queries, "-k", "5", "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [[(h["id"], h["path"], round(h["score"], 4)) for h in q["results"]] for q in out]


def contents(index: Path) -> tuple[list[object], np.ndarray, dict[str, bytes], str | None]:
    with open_index(index, read_only=True) as opened:
        ids = opened.ids_after(0, 10_000)
        return (opened.records(ids), opened.stored_vectors(ids), opened.load_state_blobs(),
                opened.images_root)  # type: ignore[attr-defined]


@pytest.mark.parametrize("target", [
    "milvus-lite", pytest.param("milvus-server", marks=pytest.mark.milvus_server)])
def test_migrate_there_and_back_gives_the_same_searches(
        source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        target: str, request: pytest.FixtureRequest) -> None:
    images, index = source
    uri = (str(tmp_path / "m.db") if target == "milvus-lite"
           else str(request.getfixturevalue("milvus_server")))
    collection = f"moved_{uuid.uuid4().hex[:8]}"  # the session's server outlives the test
    expected = searches(index, images, capsys)
    records, xb, state, root = contents(index)
    assert state and root == str(images.resolve())

    milvus = tmp_path / "on-milvus"
    assert main(["index", "migrate", "--index", str(index), "--to", str(milvus),
                 "--store", "milvus", "--milvus-uri", uri, "--collection", collection]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("migrated 10 images") and "nothing embedded" in out[0]
    assert len(out) == 1 and "10 layouts" in out[0]  # Milvus keeps them too
    assert _same(contents(milvus), (records, xb, state, root))
    assert searches(milvus, images, capsys) == expected

    back = tmp_path / "back"
    assert main(["index", "migrate", "--index", str(milvus), "--to", str(back)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "FAISS+SQLite" in out[0]
    assert _same(contents(back), (records, xb, state, root))
    assert searches(back, images, capsys) == expected
    with ImageIndex.open(back, read_only=True) as opened:
        ids = opened.ids_after(0, 100)
        with ImageIndex.open(index, read_only=True) as original:
            assert {k: v.tolist() for k, v in opened.layouts(ids).items()} == {
                k: v.tolist() for k, v in original.layouts(ids).items()}  # there and back


def _same(got: tuple[list[object], np.ndarray, dict[str, bytes], str | None],
          want: tuple[list[object], np.ndarray, dict[str, bytes], str | None]) -> bool:
    np.testing.assert_array_equal(got[1], want[1])
    assert (got[0], got[2], got[3]) == (want[0], want[2], want[3])
    return True


def test_local_to_local_keeps_layouts_and_dba_to_milvus_is_said(
        source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, index = source
    copy = tmp_path / "copy"
    assert main(["index", "migrate", "--index", str(index), "--to", str(copy)]) == 0
    assert "10 layouts" in capsys.readouterr().out
    with ImageIndex.open(index, read_only=True) as a, ImageIndex.open(copy, read_only=True) as b:
        ids = a.ids_after(0, 100)
        assert {k: v.tolist() for k, v in a.layouts(ids).items()} == {
            k: v.tolist() for k, v in b.layouts(ids).items()}
    dba = tmp_path / "dba"
    assert main(["index", "build", "--images", str(images), "--index", str(dba), *BUILD,
                 "--dba", "2"]) == 0
    capsys.readouterr()
    assert main(["index", "migrate", "--index", str(dba), "--to", str(tmp_path / "dba-m"),
                 "--store", "milvus", "--milvus-uri", str(tmp_path / "d.db"),
                 "--collection", "dba"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert "DBA (dba_k=2" in line and "layout" not in line
    with open_index(tmp_path / "dba-m", read_only=True) as opened:
        assert opened.manifest.dba_k == 0


def test_migrate_refuses_a_target_that_holds_an_index(
        source: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, index = source
    capsys.readouterr()
    assert main(["index", "migrate", "--index", str(index), "--to", str(index)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds an index" in err[0]


def test_export_reads_back_as_the_stored_records_and_vectors(
        source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    _, index = source
    out = tmp_path / "out" / "index.parquet"
    assert main(["index", "export", "--index", str(index), "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("exported 10 images (8-d float32 vectors)")
    table = pq.read_table(out)
    records, xb, _, _ = contents(index)
    assert table.column("id").to_pylist() == [r.id for r in records]  # type: ignore[attr-defined]
    assert table.column("path").to_pylist() == [r.path for r in records]  # type: ignore[attr-defined]
    np.testing.assert_array_equal(np.asarray(table.column("vector").to_pylist(), np.float32), xb)
    manifest = json.loads(table.schema.metadata[b"cbir.manifest"])
    assert manifest["whiten"] is True and manifest["dim"] == 8
    assert not list(out.parent.glob("*.partial"))


def test_uploads_kept_in_the_index_move_with_it(
        source: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An image in the source's uploads folder (where the HTTP API keeps them) is copied, and its
    record points at the copy; the source keeps its own."""
    _, built = source
    index = tmp_path / "with-upload"
    assert main(["index", "migrate", "--index", str(built), "--to", str(index)]) == 0
    upload = photo(index / "data" / "ab" / "upload.jpg", 1400)
    assert main(["index", "add", "--index", str(index), str(upload), "--no-progress"]) == 0
    capsys.readouterr()
    target = tmp_path / "target"
    assert main(["index", "migrate", "--index", str(index), "--to", str(target),
                 "--store", "milvus", "--milvus-uri", str(tmp_path / "u.db"),
                 "--collection", "uploads"]) == 0
    assert "1 uploaded files" in capsys.readouterr().out
    copied = target.resolve() / "data" / "ab" / "upload.jpg"
    assert copied.read_bytes() == upload.read_bytes()
    with open_index(target, read_only=True) as opened:
        paths = {r.path for r in opened.records(opened.ids_after(0, 100))}
    assert str(copied) in paths and str(upload.resolve()) not in paths
    assert upload.is_file()
