"""``cbir index build --engine ray --ray-address`` on a local two-node Ray cluster.

``ray start --head`` plus a second ``ray start --address`` on this machine, each with its own
CPU (and a resource naming it): the build's actors run on both nodes (the driver logs the node
of every row) and the vectors equal a local build's. The nodes are ``ray start --block``
processes in their own sessions, stopped by their process group (``ray stop`` would stop every
Ray on the machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.service.conftest import BUILD, free_port

pytestmark = pytest.mark.slow
NODE_START_S = 180.0


def _ray() -> str:
    return shutil.which("ray") or str(Path(sys.executable).with_name("ray"))


def _node(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([_ray(), "start", "--block", "--disable-usage-stats", *args],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + NODE_START_S
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"ray start {' '.join(args)} failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
            return


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("ray", reason="pip install -e '.[ray]'")
    logs = tmp_path_factory.mktemp("ray_nodes")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # unix sockets need a short path
    port = free_port()
    head = _node(["--head", f"--port={port}", "--num-cpus=1", '--resources={"head": 1}',
                  "--include-dashboard=false", f"--temp-dir={temp}"], logs / "head.log")
    try:
        second = _node([f"--address=127.0.0.1:{port}", "--num-cpus=1",
                        '--resources={"second": 1}'], logs / "second.log")
        try:
            yield f"127.0.0.1:{port}"
        finally:
            _stop(second)
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


def vectors(index: Path) -> dict[str, np.ndarray]:
    with sqlite3.connect(index / "store.sqlite") as db:
        rows = db.execute("SELECT path, vector FROM images").fetchall()
    return {path: np.frombuffer(blob, np.float32) for path, blob in rows}


def build(images: Path, index: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CBIR_", "RAY_"))}
    done = subprocess.run([sys.executable, "-m", "indexer", "index", "build", "--images",
                           str(images), "--index", str(index), *BUILD, "--threads", "1", *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_a_build_on_two_ray_nodes_equals_the_local_one(two_nodes: str, image_folder: Path,
                                                       tmp_path: Path) -> None:
    build(image_folder, tmp_path / "local")
    done = build(image_folder, tmp_path / "ray", "--engine", "ray", "--ray-address", two_nodes,
                 "--ray-actors", "2")
    pace = re.search(r"actors ran on (\d+) node\(s\): (.*)", done.stderr)
    assert pace is not None, done.stderr
    print(f"\n{pace.group(0)}")
    assert pace.group(1) == "2", done.stderr
    local, ray = vectors(tmp_path / "local"), vectors(tmp_path / "ray")
    assert len(local) == 12 and set(ray) == set(local)
    for path, vector in local.items():
        np.testing.assert_allclose(ray[path], vector, atol=1e-5)
