"""``cbir index build --engine ray --ray-address`` on a two-node local Ray cluster.

A head and a second node, one CPU each, started on this machine as real ``ray start --block``
processes with a private temp dir and ports (token authentication off: the nodes, the driver and
nothing else share this cluster); a few generated images embedded with random SqueezeNet weights.
The build's log says on which nodes the actors ran: both; the vectors equal a local build's.
Each node is stopped by killing its process group (never ``ray stop``: it stops every Ray on the
machine).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer import cli
from tests.conftest import scene
from tests.indexer.test_ray_build import vectors

pytest.importorskip("ray", reason="pip install -e '.[ray]'")
pytestmark = pytest.mark.slow

N_IMAGES = 24           # three actor calls of 8: two actors, one call each at a time
READY = "will now block forever"
RAY = str(Path(sys.executable).with_name("ray"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_node(log: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen([RAY, "start", "--num-cpus=1", "--block",
                                 f"--dashboard-agent-listen-port={free_port()}", *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    deadline = time.monotonic() + 60
    while READY not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"ray start failed:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=15)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture()
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The address of a two-node Ray cluster on this machine (short temp dir: socket paths)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="cbir-ray-", dir="/tmp") as root:
        port = free_port()
        address = f"127.0.0.1:{port}"
        head = start_node(Path(root) / "head.log", env, "--head", f"--port={port}",
                          f"--temp-dir={root}", "--include-dashboard=false",
                          f"--ray-client-server-port={free_port()}")
        try:
            second = start_node(Path(root) / "second.log", env, f"--address={address}")
            try:
                yield address
            finally:
                stop(second)
        finally:
            stop(head)


def build(images: Path, index: Path) -> None:
    argv = ["index", "build", "--images", str(images), "--index", str(index),
            "--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
            "--threads", "1", "--no-progress"]
    assert cli.main(argv) == 0


def build_on_ray(images: Path, index: Path, address: str) -> str:
    """``cbir index build --engine ray`` in its own process, as a user runs it; its stderr.

    (A driver that already ran a local Ray session, as this test process may have, cannot host a
    second one on a cluster: Ray 2.60 cancels the new pool's actors before they start.)
    """
    argv = [sys.executable, "-m", "indexer", "index", "build", "--images", str(images),
            "--index", str(index), "--backbone", "squeezenet1_1", "--weights", "random",
            "--max-side", "64", "--threads", "1", "--no-progress", "--engine", "ray",
            "--ray-address", address]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_actors_run_on_both_nodes_and_vectors_equal_the_local_build(
        cluster: str, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(N_IMAGES):
        scene(100 + i, (64, 48) if i % 2 else (48, 64)).save(images / f"s{i:02d}.png")
    build(images, tmp_path / "local")
    log = build_on_ray(images, tmp_path / "ray", cluster)
    ran = re.search(r"actors ran on (\d+) node\(s\): (.*)", log)
    assert ran is not None, log
    counts = [int(c) for c in re.findall(r": (\d+) images", ran.group(2))]
    assert ran.group(1) == "2" and len(counts) == 2 and sum(counts) == N_IMAGES, ran.group(0)
    local, ray = vectors(tmp_path / "local"), vectors(tmp_path / "ray")
    assert len(local) == N_IMAGES and set(ray) == set(local)
    cosines = [float(local[p] @ ray[p]) for p in local]
    assert min(cosines) >= 0.9999, min(cosines)
