"""``cbir serve``: an index directory, or a replica of a Milvus collection with no index at all.

``--milvus-uri URI --collection NAME`` (or ``CBIR_STORE_URI`` + ``CBIR_COLLECTION``) starts a
stateless replica; neither that nor ``--index`` (nor ``CBIR_INDEX_DIR``) is a usage error, one
line and exit 2, before the service starts. A replica started while Milvus is down exits 1 with
one readable line (its supervisor restarts it). Each runs as a real process, as users start it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import service.__main__ as service_main
from indexer.cli import build_parser
from tests.conftest import REPO
from tests.service.conftest import free_port


def cbir_serve(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    return subprocess.run([sys.executable, "-m", "indexer", "serve", "--port", "0", *args],
                          cwd=REPO, env={**clean, **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_nothing_to_serve_is_a_usage_error() -> None:
    done = cbir_serve()
    assert done.returncode == 2
    assert one_line(done) == ("cbir: error: nothing to serve: pass --index DIR, or --milvus-uri "
                              "URI --collection NAME for a replica of a Milvus collection")


@pytest.mark.parametrize(("args", "env"), [
    (["--milvus-uri", "http://127.0.0.1:19530"], {}),
    (["--collection", "photos"], {}),
    ([], {"CBIR_COLLECTION": "photos"}),
])
def test_half_a_store_is_a_usage_error(args: list[str], env: dict[str, str]) -> None:
    done = cbir_serve(*args, **env)
    assert done.returncode == 2
    assert one_line(done) == ("cbir: error: --milvus-uri and --collection go together (or "
                              "CBIR_STORE_URI and CBIR_COLLECTION)")


def service_settings(*cbir_args: str) -> service_main.Settings:
    """The settings ``python -m service`` reads from the command line ``cbir serve`` hands it."""
    words = ["serve", *cbir_args]
    ns = build_parser(words).parse_args(words)
    argv = ns.options(ns).service_argv()
    assert argv[:3] == [sys.executable, "-m", "service"]
    return service_main.settings_from(service_main.parse_args(argv[3:]))


def test_the_flags_reach_the_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("CBIR_INDEX_DIR", "CBIR_STORE_URI", "CBIR_COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    replica = service_settings("--milvus-uri", "http://m:19530", "--collection", "photos")
    assert (replica.store_uri, replica.collection) == ("http://m:19530", "photos")
    assert replica.index_dir == Path(tempfile.gettempdir()) / "cbir-photos"
    placed = service_settings("--milvus-uri", "http://m:19530", "--collection", "photos",
                              "--index", str(tmp_path))
    assert placed.index_dir == tmp_path and placed.collection == "photos"
    plain = service_settings("--index", str(tmp_path))
    assert (plain.index_dir, plain.store_uri, plain.collection) == (tmp_path, None, None)


def test_quiet_reaches_the_service() -> None:
    for words, level in ((["-q", "serve"], "warning"), (["serve", "-v"], "debug"),
                         (["serve"], None)):
        argv = [*words, "--index", "i"]
        ns = build_parser(argv).parse_args(argv)
        got = ns.options(ns).service_argv()
        assert (got[got.index("--log-level") + 1] if "--log-level" in got else None) == level


def test_a_replica_started_while_milvus_is_down_exits_1(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = cbir_serve("--milvus-uri", uri, "--collection", "photos", "--index",
                      str(tmp_path / "replica"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if not line.startswith("INFO")]
    assert len(errors) == 1, done.stderr
    assert f"cannot reach Milvus at {uri}" in errors[0], done.stderr
