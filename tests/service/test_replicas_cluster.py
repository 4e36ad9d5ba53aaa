"""API replicas as separate processes on one Milvus server collection, started by the local
cluster recipe (``python -m indexer.cluster``, on the session's server), and the faults a
deployment meets: a replica killed in the middle of an add, the Milvus server restarted under
load. Every replica is a ``cbir serve --milvus-uri URI --collection NAME`` process started from
the store alone, as users start them; uploads go to one shared folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from indexer.milvus_server import MilvusServer
from retrieval import sha256_hex
from retrieval.index import open_index
from tests.conftest import REPO
from tests.service.conftest import API_KEY, AUTH, BUILD, Server, jpeg

pytestmark = pytest.mark.milvus_server
pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")

START_TIMEOUT_S = 420.0


@dataclass
class Running:
    proc: subprocess.Popen[bytes]
    root: Path
    info: dict[str, Any]

    @property
    def urls(self) -> list[str]:
        return [r["url"] for r in self.info["replicas"]]

    def client(self, i: int) -> httpx.Client:
        return httpx.Client(base_url=self.urls[i], timeout=120)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=180)


@pytest.fixture(scope="module")
def cluster(milvus_server: str, image_folder: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    root = tmp_path_factory.mktemp("cluster")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CBIR_")}
    argv = [sys.executable, "-m", "indexer.cluster", "--data", str(root), "--milvus-uri",
            milvus_server, "--collection", f"r_{uuid.uuid4().hex[:8]}", "--images",
            str(image_folder), "--build-args", " ".join(BUILD), "--replicas", "2", "--port", "0",
            "--api-key", API_KEY]
    with (root / "cluster.out").open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    running = Running(proc, root, {})
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (root / "cluster.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            running.stop()
            logs = "\n".join(p.read_text(errors="replace")[-3000:]
                             for p in sorted(root.rglob("*.log")) if p.is_file())
            pytest.fail(f"the cluster did not start:\n{(root / 'cluster.out').read_text()}\n"
                        f"{logs}")
        time.sleep(0.5)
    running.info = json.loads((root / "cluster.json").read_text())
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def store(cluster: Running, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The collection opened read-only by the test itself (to count what is stored)."""
    from retrieval.index import materialise_index

    path = materialise_index(cluster.info["milvus"], cluster.info["collection"],
                             tmp_path_factory.mktemp("reader"))
    with open_index(path, read_only=True) as index:
        yield index


def replica(uri: str, collection: str, directory: Path) -> list[str]:
    """``cbir serve`` as a replica of ``collection`` (its copy of the manifest in ``directory``)."""
    return [sys.executable, "-m", "indexer", "-q", "serve", "--milvus-uri", uri,
            "--collection", collection, "--index", str(directory)]


def upload(*seeds: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("images", (f"s{s}.jpg", jpeg(s, (72, 56)), "image/jpeg")) for s in seeds]


def sha(seed: int) -> str:
    return sha256_hex(jpeg(seed, (72, 56)))


def test_it_says_where_everything_listens(cluster: Running) -> None:
    out = (cluster.root / "cluster.out").read_text()
    assert f"milvus     {cluster.info['milvus']}  (running already)" in out
    for i, url in enumerate(cluster.urls, start=1):
        assert f"replica {i}  {url}" in out
    assert out.strip().endswith("ready: Ctrl-C stops them all")
    for r in cluster.info["replicas"]:  # `cbir serve --milvus-uri … --collection …`, no env
        argv = Path(f"/proc/{r['pid']}/cmdline").read_bytes().split(b"\0")
        assert argv[argv.index(b"--milvus-uri") + 1].decode() == cluster.info["milvus"]
        assert argv[argv.index(b"--collection") + 1].decode() == cluster.info["collection"]
        assert b"CBIR_STORE_URI=" not in Path(f"/proc/{r['pid']}/environ").read_bytes()
    for i in range(2):
        with cluster.client(i) as c:
            assert c.get("/readyz").json() == {"status": "ready", "count": 12}


def test_concurrent_adds_through_two_replicas(cluster: Running, store: Any) -> None:
    acknowledged: list[tuple[int, str]] = []
    unseen: list[int] = []
    failures: list[str] = []

    def writer(i: int) -> None:
        with cluster.client(i) as mine, cluster.client(1 - i) as other:
            for r in range(6):
                seeds = (1000 + 100 * i + 2 * r, 1001 + 100 * i + 2 * r)
                got = mine.post("/images", files=upload(*seeds), headers=AUTH)
                if got.status_code != 201:
                    failures.append(got.text)
                    continue
                for added, seed in zip(got.json()["added"], seeds, strict=True):
                    acknowledged.append((added["id"], sha(seed)))
                    if other.get(f"/images/{added['id']}").status_code != 200:
                        unseen.append(added["id"])  # not seen by the other replica at once

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures and not unseen
    ids = [i for i, _ in acknowledged]
    assert len(ids) == 24 and len(set(ids)) == 24  # no id given twice
    assert {r.id: r.sha256 for r in store.records(ids)} == dict(acknowledged)
    assert all(len(store.find_sha256(s)) == 1 for _, s in acknowledged)  # each stored once
    for i in range(2):
        with cluster.client(i) as c:
            assert c.get("/stats").json()["count"] == 36


def _both_at_once(cluster: Running, seed: int) -> list[dict[str, Any]]:
    """The same file sent to both replicas at the same moment; their answers."""
    answers: list[dict[str, Any]] = [{}, {}]
    barrier = threading.Barrier(2)

    def send(i: int) -> None:
        with cluster.client(i) as c:
            barrier.wait()
            answers[i] = c.post("/images", files=upload(seed), headers=AUTH).json()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def test_the_same_content_through_both_at_once(cluster: Running, store: Any) -> None:
    for seed in (2000, 2001, 2002):
        first, second = (a["added"][0] for a in _both_at_once(cluster, seed))
        assert first["id"] == second["id"]
        assert {first["duplicate"], second["duplicate"]} == {True, False}
        assert [x.id for x in store.find_sha256(sha(seed))] == [first["id"]]


def test_a_retry_through_the_other_replica_replays(cluster: Running) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}", **AUTH}
    with cluster.client(0) as a, cluster.client(1) as b:
        first = a.post("/images", files=upload(3000, 3001), headers=key)
        assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
        again = b.post("/images", files=upload(3000, 3001), headers=key)
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        other = b.post("/images", files=upload(3002), headers=key)
        assert other.status_code == 422 and "other content" in other.json()["detail"]


def test_near_duplicates_on_milvus(cluster: Running) -> None:
    with cluster.client(1) as c:
        found = c.get("/duplicates")
        assert found.status_code == 200, found.text
        added = c.post("/images?report_duplicates=true", files=upload(3100), headers=AUTH)
        assert added.status_code == 201, added.text
        assert len(added.json()["duplicates"]) == 1  # its near-duplicates, from Milvus


def _send_then_kill(server: Server, body: bytes, headers: dict[str, str], after_s: float) -> None:
    """Send a whole request on a raw socket, then kill -9 the server ``after_s`` later."""
    assert server.proc is not None
    host, port = server.url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"POST /images HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
                  f"{head}\r\n".encode() + body)
        time.sleep(after_s)
        server.kill9()


def _timed_add(server: Server, seeds: list[int]) -> float:
    """One add of ``seeds`` through ``server``; its seconds."""
    began = time.monotonic()
    with server.client() as c:
        got = c.post("/images", files=upload(*seeds), headers=AUTH)
    assert got.status_code == 201, got.text
    return time.monotonic() - began


#: When the kill lands, as a share of one warm 6-image add's time: at once (the body not yet
#: read), then into the embedding, then into the writes to Milvus.
KILL_AT = (0.0, 0.6, 0.95)


def test_a_replica_killed_in_the_middle_of_an_add(cluster: Running, store: Any,
                                                  tmp_path: Path) -> None:
    """kill -9 at several moments of a 6-image add (a fresh replica each time, warmed by an add
    of the same size): never a partial request, and the retry through another replica with the
    key stores it once; a second retry replays the first answer."""
    env = {"CBIR_API_KEY": API_KEY, "CBIR_DATA_DIR": str(cluster.root / "uploads")}
    outcomes = []
    for n, share in enumerate(KILL_AT):
        doomed = Server(tmp_path / f"replica{n}", tmp_path / f"replica{n}.log", env,
                        replica(cluster.info["milvus"], cluster.info["collection"],
                                tmp_path / f"replica{n}")).start()
        warm = _timed_add(doomed, [3900 + 10 * n + i for i in range(6)])
        seeds = [4000 + 10 * n + i for i in range(6)]
        request = httpx.Request("POST", "http://x/images", files=upload(*seeds))
        key = {"Idempotency-Key": f"killed-{n}", **AUTH,
               "Content-Type": request.headers["Content-Type"]}
        _send_then_kill(doomed, request.read(), key, 0.02 + share * warm)
        stored = [len(store.find_sha256(sha(s))) for s in seeds]
        outcomes.append(f"at {share:.2f} of {warm:.2f} s: {sum(stored)} of 6 stored")
        assert stored in ([0] * 6, [1] * 6), outcomes  # no partial request is visible
        with cluster.client(0) as a:
            retried = a.post("/images", files=upload(*seeds), headers=key)
            assert retried.status_code == 201, retried.text
            again = a.post("/images", files=upload(*seeds), headers=key)
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.json() == retried.json()
        assert [len(store.find_sha256(sha(s))) for s in seeds] == [1] * 6
    print("\nkill -9 during a 6-image add: " + "; ".join(outcomes))


@dataclass
class Sent:
    key: str
    seed: int
    status: int
    body: dict[str, Any]
    retry_after: str | None
    seconds: float


def _load(cluster: Running, stop: threading.Event, sent: list[Sent]) -> None:
    """Adds (one new image each, with a key) alternating between the replicas, until stopped."""
    clients = [cluster.client(0), cluster.client(1)]
    n = 0
    while not stop.is_set():
        seed, key = 5000 + n, f"load-{n}"
        began = time.monotonic()
        try:
            got = clients[n % 2].post("/images", files=upload(seed),
                                      headers={"Idempotency-Key": key, **AUTH})
            sent.append(Sent(key, seed, got.status_code, got.json(),
                             got.headers.get("Retry-After"), time.monotonic() - began))
        except httpx.TransportError as exc:  # pragma: no cover - reported by the test
            sent.append(Sent(key, seed, 0, {"error": repr(exc)}, None, time.monotonic() - began))
        n += 1
        time.sleep(0.1)
    for c in clients:
        c.close()


def _ready_reasons(cluster: Running, until: float) -> list[tuple[int, dict[str, Any], str]]:
    seen = []
    with cluster.client(0) as c:
        while time.monotonic() < until:
            got = c.get("/readyz")
            seen.append((got.status_code, got.json(), got.headers.get("Retry-After", "")))
            if got.status_code == 200 and len(seen) > 1 and seen[-2][0] != 200:
                return seen
            time.sleep(0.5)
    return seen


def _release_all_but(uri: str, collection: str) -> None:
    """Release the session server's other collections (earlier tests'): a restarted server
    reloads every loaded collection, which would make this test wait on all of them."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    try:
        for name in client.list_collections():
            if not name.startswith(collection):
                client.release_collection(name)
    finally:
        client.close()


def _post_honouring_retry_after(client: httpx.Client, s: Sent) -> httpx.Response:
    """The retry of a refused add, as a client does it: again after each ``Retry-After`` (the
    other replica may still be reloading the collection), for at most two minutes."""
    deadline = time.monotonic() + 120
    while True:
        got = client.post("/images", files=upload(s.seed),
                          headers={"Idempotency-Key": s.key, **AUTH})
        wait = got.headers.get("Retry-After")
        if got.status_code != 503 or wait is None or time.monotonic() > deadline:
            return got
        time.sleep(float(wait))


def test_the_milvus_server_restarts_under_load(cluster: Running, store: Any,
                                               milvus_server_process: MilvusServer) -> None:
    _release_all_but(cluster.info["milvus"], cluster.info["collection"])
    stop, sent = threading.Event(), []
    load = threading.Thread(target=_load, args=(cluster, stop, sent))
    load.start()
    time.sleep(2)
    watcher_seen: list[tuple[int, dict[str, Any], str]] = []
    watcher = threading.Thread(target=lambda: watcher_seen.extend(
        _ready_reasons(cluster, time.monotonic() + 300)))
    watcher.start()
    took = milvus_server_process.restart()
    watcher.join()
    time.sleep(3)
    stop.set()
    load.join()
    failed = [s for s in sent if s.status != 201]
    print(f"\nserver healthy again {took:.1f} s after its stop; adds: {len(sent)} sent, "
          f"{len(sent) - len(failed)} acknowledged, {len(failed)} answered "
          f"{sorted({s.status for s in failed})} (slowest {max(s.seconds for s in sent):.1f} s); "
          f"/readyz: {sum(s[0] == 503 for s in watcher_seen)} x 503, e.g. "
          f"{next((s[1] for s in watcher_seen if s[0] == 503), None)}")
    assert watcher_seen[-1][0] == 200, watcher_seen[-3:]  # recovered, no replica restarted
    down = [s for s in watcher_seen if s[0] == 503]
    assert down and all(s[1]["error"] == "store_unavailable" and s[2] for s in down)
    assert all("Milvus" in s[1]["detail"] for s in down)  # /readyz says why
    assert {s.status for s in sent} <= {201, 503} and any(s.status == 503 for s in sent)
    assert all(s.retry_after and s.body["error"] == "store_unavailable"
               for s in sent if s.status == 503)
    acknowledged = {s.body["added"][0]["id"]: sha(s.seed) for s in sent if s.status == 201}
    assert {r.id: r.sha256 for r in store.records(list(acknowledged))} == acknowledged
    with cluster.client(1) as b:  # what failed is retried with its key: applied once
        for s in sent:
            if s.status == 503:
                retried = _post_honouring_retry_after(b, s)
                assert retried.status_code == 201, retried.text
    assert all(len(store.find_sha256(sha(s.seed))) == 1 for s in sent)


def test_the_cluster_stops_them_all(cluster: Running) -> None:
    pids = [r["pid"] for r in cluster.info["replicas"]]
    assert cluster.stop() == 0
    assert (cluster.root / "cluster.out").read_text().strip().endswith("stopped")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (cluster.root / "cluster.json").exists()
