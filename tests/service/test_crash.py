"""kill -9 while multi-file adds are in flight, several times: every request is all-or-nothing,
every acknowledged one is there, retrying with the same Idempotency-Key creates no duplicate, and
the restarted server leaves no temporary or unrecorded file behind."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.service.conftest import AUTH, Server, ServerFactory, jpeg

CYCLES = 3
CLIENTS = 2
FILES = 4  # per request, of different heights (so they fall in different size buckets)


@dataclass
class Request:
    key: str
    files: list[bytes]
    acked: bool = False

    @property
    def shas(self) -> list[str]:
        return [hashlib.sha256(f).hexdigest() for f in self.files]


@dataclass
class Ledger:
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def new(self) -> Request:
        with self.lock:
            n = len(self.requests)
            request = Request(f"crash-{n}", [jpeg(10_000 + n * FILES + i, (64, 48 + 8 * i))
                                             for i in range(FILES)])
            self.requests.append(request)
            return request


def post(client: httpx.Client, request: Request) -> httpx.Response:
    files = [("images", (f"{request.key}-{i}.jpg", data)) for i, data in enumerate(request.files)]
    return client.post("/images", files=files,
                       headers={**AUTH, "Idempotency-Key": request.key})


def writer(server: Server, ledger: Ledger, stop: threading.Event) -> None:
    with server.client() as client:
        while not stop.is_set():
            request = ledger.new()
            try:
                response = post(client, request)
            except httpx.TransportError:
                return  # killed mid-request: unacknowledged
            assert response.status_code == 201, response.text
            request.acked = True


def stored(index: Path) -> Counter[str]:
    with sqlite3.connect(index / "store.sqlite") as db:
        return Counter(str(row[0]) for row in db.execute("SELECT sha256 FROM images"))


def check(ledger: Ledger, index: Path) -> tuple[int, int]:
    """(partial requests, duplicated contents) in the store now; acked ones must be complete."""
    counts = stored(index)
    partial = 0
    for request in ledger.requests:
        present = sum(counts[sha] > 0 for sha in request.shas)
        partial += 0 < present < FILES
        assert not request.acked or present == FILES, f"{request.key} acknowledged but lost"
    duplicates = sum(n > 1 for n in counts.values())
    return partial, duplicates


def test_kill_9_during_adds(start_server: ServerFactory) -> None:
    rng = random.Random(13)
    ledger = Ledger()
    server = start_server()
    partial = duplicates = retried = 0
    for _ in range(CYCLES):
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(server, ledger, stop))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        time.sleep(rng.uniform(0.8, 2.5))
        server.kill9()
        stop.set()
        for thread in threads:
            thread.join(60)
        server = start_server(server.index)
        p, d = check(ledger, server.index)
        partial, duplicates = partial + p, duplicates + d
        with server.client() as client:
            for request in ledger.requests:
                if not request.acked:
                    retried += 1
                    response = post(client, request)
                    assert response.status_code in (200, 201), response.text
                    request.acked = True
    p, d = check(ledger, server.index)
    partial, duplicates = partial + p, duplicates + d
    data = server.index / "data"
    recorded = {Path(p).name for p in _paths(server.index)}
    leftovers = [f.name for f in data.iterdir() if f.name not in recorded]
    print(f"crash test: {CYCLES} kill -9 cycles, {len(ledger.requests)} requests of {FILES} "
          f"files, {len(ledger.requests) - retried} acknowledged before a kill, {retried} cut "
          f"off and retried, partial {partial}, duplicates {duplicates}, "
          f"leftover files {len(leftovers)}")
    assert retried >= CYCLES  # every kill cut requests off mid-flight
    assert (partial, duplicates, leftovers) == (0, 0, [])


def _paths(index: Path) -> list[str]:
    with sqlite3.connect(index / "store.sqlite") as db:
        return [str(row[0]) for row in db.execute("SELECT path FROM images")]
