"""Service fixtures: one index built by the real CLI per session, real servers in subprocesses.

Starting a server costs a torch import, so the suite starts few: one shared ``live`` server (API
key set, 1 MB body limit) for everything that needs neither a restart nor other settings, and
fresh ones (on copies of the index) for the kill -9 test, the full-queue and read-only test
(one inference thread, no queue, no key) and the fuzzer (whose deletes must touch no shared index).
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from indexer import cli
from tests.conftest import REPO, scene

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MAX_UPLOAD = 1_000_000
START_TIMEOUT_S = 240.0
BUILD = ["--backbone", "squeezenet1_1", "--weights", "random", "--max-side", "64",
         "--no-progress"]


def jpeg(seed: int, size: tuple[int, int] = (80, 64)) -> bytes:
    out = io.BytesIO()
    scene(seed, size).save(out, "JPEG", quality=90)
    return out.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def copy_index(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("lock"))
    return dest


def wait_until_ready(proc: subprocess.Popen[bytes], client: httpx.Client, log: Path, what: str,
                     timeout_s: float = START_TIMEOUT_S) -> None:
    """Poll ``/readyz`` until 200; fail with ``log`` if ``proc`` exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if client.get("/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {timeout_s} s:\n{log.read_text()}")


class Server:
    """``python -m service`` in a subprocess on a free loopback port (or ``command``, the command
    line before ``--port``: e.g. ``cbir serve`` as a replica)."""

    def __init__(self, index: Path, log: Path, env: dict[str, str],
                 command: list[str] | None = None) -> None:
        self.index = index
        self.log = log
        self.env = env
        self.command = command or [sys.executable, "-m", "service", "--index", str(index),
                                   "--log-level", "warning"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Server:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        env.update(self.env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*self.command, "--port", str(port)], cwd=REPO,
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        with self.client() as client:
            wait_until_ready(self.proc, client, self.log, "server")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill9()


@pytest.fixture(scope="session")
def base_index(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's index, built by ``cbir index build`` (12 images; never written to)."""
    index = tmp_path_factory.mktemp("service") / "index"
    assert cli.main(["index", "build", "--images", str(image_folder), "--index", str(index),
                     *BUILD]) == 0
    return index


ServerFactory = Callable[..., Server]


def _factory(base: Path, root: Path, servers: list[Server]) -> ServerFactory:
    def make(index: Path | None = None, **env: str) -> Server:
        n = len(servers)
        index = index or copy_index(base, root / f"index{n}")
        settings = {"CBIR_API_KEY": API_KEY, "CBIR_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
                    **{f"CBIR_{k.upper()}": v for k, v in env.items()}}
        server = Server(index, root / f"server{n}.log", settings)
        servers.append(server)
        return server.start()

    return make


@pytest.fixture()
def start_server(base_index: Path, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers (each on a fresh copy of the index unless given one); stopped at the end."""
    servers: list[Server] = []
    yield _factory(base_index, tmp_path, servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def live(base_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The shared server: a copy of the index, writes enabled, body limit ``MAX_UPLOAD``."""
    servers: list[Server] = []
    yield _factory(base_index, tmp_path_factory.mktemp("live"), servers)()
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def module_server(base_index: Path,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Like ``start_server``, but the servers live as long as the test module."""
    servers: list[Server] = []
    yield _factory(base_index, tmp_path_factory.mktemp("module"), servers)
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def client(live: Server) -> Iterator[httpx.Client]:
    with live.client() as c:
        yield c
