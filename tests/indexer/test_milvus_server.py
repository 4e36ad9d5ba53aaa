"""The session's Milvus server helper: a server that cannot start is an error with its log."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.milvus_server import MilvusServer, MilvusServerError

pytest.importorskip("milvus", reason="pip install -e '.[milvus]'")


def test_a_failed_start_reports_the_log_tail(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file where the server wants its data folder")
    server = MilvusServer(tmp_path)
    with pytest.raises(MilvusServerError, match=r"(?s)exited with \d+:.*FileExistsError"):
        server.start(timeout_s=60, check_ports=False)
    assert server.proc is None or server.proc.poll() is not None


@pytest.mark.milvus_server
def test_a_second_server_is_refused(milvus_server: str, tmp_path: Path) -> None:
    with pytest.raises(MilvusServerError, match=r"ports \[2379, 2380, 9091\] already answer"):
        MilvusServer(tmp_path).start()
