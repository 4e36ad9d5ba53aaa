"""``python -m indexer.cluster``: a local cluster without containers.

One Milvus server (:mod:`indexer.milvus_server`; or ``--milvus-uri`` of one that runs), a cbir
collection in it (built from ``--images`` unless it exists), ``--replicas`` API processes
(``cbir serve --milvus-uri URI --collection NAME``: stateless replicas started from the store
alone, uploads in one shared folder) and, with ``--ray``, a Ray head. It prints where each one
listens, writes the same to ``<data>/cluster.json``, and on Ctrl-C (SIGINT) or SIGTERM stops them
all: the replicas, Ray, then the server it started. Logs go to ``<data>/logs/``.

Exit codes: 0 after a clean stop, 1 when something could not start (what did start is stopped),
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from indexer.argtypes import from_namespace
from indexer.milvus_server import MilvusServer, MilvusServerError
from retrieval import RetrievalError

__all__ = ["main"]

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0


class ClusterError(RuntimeError):
    """Something did not start; the message says what and where its log is."""


@dataclass(frozen=True)
class ClusterOptions:
    """The flags, read once (:func:`build_parser`)."""

    data: str
    collection: str = "photos"
    images: str | None = None
    build_args: str = ""
    replicas: int = 2
    port: int = 8000
    api_key: str | None = None
    milvus_uri: str | None = None
    milvus_port: int = 19530
    ray: bool = False
    ray_cpus: int = 2

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> ClusterOptions:
        return from_namespace(cls, ns)


@dataclass
class Member:
    """A process of the cluster: its name, where it listens, its log."""

    name: str
    address: str
    log: Path
    proc: subprocess.Popen[bytes]


@dataclass
class Cluster:
    root: Path
    milvus: MilvusServer | None = None
    uri: str = ""
    members: list[Member] = field(default_factory=list)

    def describe(self, collection: str) -> dict[str, object]:
        return {"milvus": self.uri, "collection": collection,
                "replicas": [{"url": m.address, "pid": m.proc.pid, "log": str(m.log)}
                             for m in self.members if m.name.startswith("replica")],
                "ray": next((m.address for m in self.members if m.name == "ray"), None)}

    def stop(self) -> None:
        """Replicas and Ray (SIGTERM to each process group, then SIGKILL), then Milvus."""
        for member in reversed(self.members):
            _stop_group(member.proc)
        self.members.clear()
        if self.milvus is not None:
            self.milvus.stop()
            self.milvus = None


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)


def _tail(log: Path, lines: int = 15) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(text[-lines:])


def _ensure_collection(opts: ClusterOptions, uri: str, root: Path) -> None:
    """Build the collection from ``--images`` unless Milvus already holds it."""
    from retrieval import ArtifactError
    from retrieval.index import materialise_index

    try:
        materialise_index(uri, opts.collection, root / "published")  # what a replica reads
        return
    except ArtifactError:
        if not opts.images:
            raise ClusterError(f"no cbir collection {opts.collection!r} at {uri}: pass --images "
                               "to build one") from None
    log = root / "logs" / "build.log"
    argv = [sys.executable, "-m", "indexer", "index", "build", "--images", opts.images,
            "--index", str(root / "index"), "--store", "milvus", "--milvus-uri", uri,
            "--collection", opts.collection, "--no-progress", *shlex.split(opts.build_args)]
    done = _spawn(argv, log, dict(os.environ))
    if done.wait() != 0:
        raise ClusterError(f"building {opts.collection!r} failed (exit {done.returncode}); "
                           f"{log}:\n{_tail(log)}")


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _start_replicas(opts: ClusterOptions, cluster: Cluster) -> None:
    """Start every replica, then wait until each is ready (they load side by side)."""
    replicas: list[Member] = []
    for i in range(1, opts.replicas + 1):
        port = opts.port + i - 1 if opts.port else _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
        env["CBIR_DATA_DIR"] = str(cluster.root / "uploads")
        if opts.api_key:
            env["CBIR_API_KEY"] = opts.api_key
        log = cluster.root / "logs" / f"replica{i}.log"
        argv = [sys.executable, "-m", "indexer", "-q", "serve", "--milvus-uri", cluster.uri,
                "--collection", opts.collection, "--index", str(cluster.root / f"replica{i}"),
                "--host", "127.0.0.1", "--port", str(port)]  # `cbir serve`, as users start one
        proc = _spawn(argv, log, env)
        replicas.append(Member(f"replica {i}", f"http://127.0.0.1:{port}", log, proc))
        cluster.members.append(replicas[-1])
    deadline = time.monotonic() + READY_TIMEOUT_S
    for member in replicas:
        while not _ready(member.address):
            if member.proc.poll() is not None or time.monotonic() > deadline:
                raise ClusterError(f"{member.name} did not become ready; {member.log}:\n"
                                   f"{_tail(member.log)}")
            time.sleep(0.2)


def _start_ray(opts: ClusterOptions, cluster: Cluster) -> None:
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    log = cluster.root / "logs" / "ray.log"
    proc = _spawn([ray, "start", "--head", "--block", f"--port={port}",
                   f"--num-cpus={opts.ray_cpus}", "--include-dashboard=false",
                   f"--temp-dir={cluster.root / 'ray'}"], log, dict(os.environ))
    member = Member("ray", f"127.0.0.1:{port}", log, proc)
    cluster.members.append(member)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ClusterError(f"the Ray head did not start; {log}:\n{_tail(log)}")
        time.sleep(0.2)


def _up(opts: ClusterOptions, cluster: Cluster) -> None:
    if opts.milvus_uri:
        cluster.uri = opts.milvus_uri
        print(f"milvus     {cluster.uri}  (running already)", flush=True)
    else:
        cluster.milvus = MilvusServer(cluster.root / "milvus")
        cluster.milvus.root.mkdir(parents=True, exist_ok=True)
        cluster.milvus.start(port=opts.milvus_port)
        cluster.uri = cluster.milvus.uri
        print(f"milvus     {cluster.uri}  (ready in {cluster.milvus.start_s:.1f} s; log "
              f"{cluster.milvus.log})", flush=True)
    _ensure_collection(opts, cluster.uri, cluster.root)
    if opts.ray:
        _start_ray(opts, cluster)
    _start_replicas(opts, cluster)
    for member in cluster.members:
        print(f"{member.name:<10} {member.address}  (log {member.log})", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m indexer.cluster",
                                description="Start a Milvus server, API replicas on one "
                                            "collection and (optionally) a Ray head; Ctrl-C "
                                            "stops them all.")
    p.add_argument("--data", required=True, help="folder for the server's data, logs, uploads")
    p.add_argument("--collection", default="photos", help="Milvus collection (default photos)")
    p.add_argument("--images", help="build the collection from this folder if it does not exist")
    p.add_argument("--build-args", default="", help="more `cbir index build` flags, one string")
    p.add_argument("--replicas", type=int, default=2, help="API processes (default 2)")
    p.add_argument("--port", type=int, default=8000,
                   help="first replica's port, the next ones follow (0: free ports)")
    p.add_argument("--api-key", help="CBIR_API_KEY of every replica (enables writes)")
    p.add_argument("--milvus-uri", help="use this running Milvus instead of starting one")
    p.add_argument("--milvus-port", type=int, default=19530, help="the started server's port")
    p.add_argument("--ray", action="store_true", help="also start a Ray head")
    p.add_argument("--ray-cpus", type=int, default=2, help="CPUs the Ray head offers")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    opts = ClusterOptions.from_args(build_parser().parse_args(argv))
    if opts.replicas < 1:
        print("cluster: error: --replicas must be at least 1", file=sys.stderr)
        return 2
    root = Path(opts.data).resolve()
    root.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    cluster = Cluster(root)
    try:
        _up(opts, cluster)
        (root / "cluster.json").write_text(json.dumps(cluster.describe(opts.collection),
                                                      indent=2) + "\n", encoding="utf-8")
        print("ready: Ctrl-C stops them all", flush=True)
        while not stop.wait(1.0):
            for member in cluster.members:
                if member.proc.poll() is not None and member.proc.returncode is not None:
                    print(f"{member.name} exited with {member.proc.returncode}", flush=True)
                    cluster.members.remove(member)
                    break
    except (ClusterError, MilvusServerError, RetrievalError, OSError) as exc:
        print(f"cluster: error: {exc}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
        (root / "cluster.json").unlink(missing_ok=True)
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
