"""Slow and surplus clients are bounded: half-open connections are closed within the header and
body timeouts while searches keep answering, a body trickled a byte a second is closed at its
total deadline, connections beyond the cap get the JSON 503 with ``Retry-After``, and a client
that keeps sending after an error response leaves no traceback in the log."""

from __future__ import annotations

import math
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest

from tests.service.conftest import AUTH, MAX_UPLOAD, Server, ServerFactory, jpeg

HEADER_TIMEOUT_S = 2.0
BODY_TIMEOUT_S = 2.0
SLACK_S = 1.5
HALF_OPEN = 50
BODY_DEADLINE_S = 3.0
MAX_CONNECTIONS = 3


@pytest.fixture(scope="module")
def guarded(module_server: ServerFactory) -> Server:
    return module_server(header_timeout_s=str(HEADER_TIMEOUT_S),
                         body_timeout_s=str(BODY_TIMEOUT_S))


@pytest.fixture(scope="module")
def capped(module_server: ServerFactory) -> Server:
    return module_server(header_timeout_s="10", body_timeout_s=str(BODY_TIMEOUT_S),
                         body_deadline_s=str(BODY_DEADLINE_S),
                         max_connections=str(MAX_CONNECTIONS))


def connect(server: Server) -> socket.socket:
    url = urlsplit(server.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    return sock


def closed_after(sock: socket.socket, start: float) -> float:
    """Seconds from ``start`` until the server closes ``sock`` (reads until EOF)."""
    with sock:
        while sock.recv(4096):
            pass
    return time.monotonic() - start


def test_half_open_connections_are_closed_in_time(guarded: Server) -> None:
    start = time.monotonic()
    partial_headers = [connect(guarded) for _ in range(HALF_OPEN)]
    for sock in partial_headers:
        sock.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Type: multip")
    stalled_body = connect(guarded)
    stalled_body.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
    body_start = time.monotonic()
    with ThreadPoolExecutor(HALF_OPEN + 1) as pool:
        waits = [pool.submit(closed_after, s, start) for s in partial_headers]
        body_wait = pool.submit(closed_after, stalled_body, body_start)
        with guarded.client() as client:
            searched = 0
            while not all(w.done() for w in waits) and time.monotonic() - start < 30:
                response = client.post("/search", files={"image": ("q.jpg", jpeg(7))})
                assert response.status_code == 200, response.text
                searched += 1
        closed = [w.result() for w in waits]
        body_closed = body_wait.result()
    print(f"{HALF_OPEN} partial-header connections closed after {min(closed):.2f}-"
          f"{max(closed):.2f} s (timeout {HEADER_TIMEOUT_S} s); a stalled body after "
          f"{body_closed:.2f} s (timeout {BODY_TIMEOUT_S} s); {searched} searches meanwhile")
    assert searched >= 1
    assert min(closed) >= HEADER_TIMEOUT_S - 0.2 and max(closed) <= HEADER_TIMEOUT_S + SLACK_S
    assert BODY_TIMEOUT_S - 0.2 <= body_closed <= BODY_TIMEOUT_S + SLACK_S


def test_sending_after_an_error_logs_no_traceback(guarded: Server) -> None:
    good = f"Authorization: {AUTH['Authorization']}\r\n".encode()
    for headers in (b"Authorization: Bearer wrong\r\n", good):  # 401, then 413
        sock = connect(guarded)
        sock.sendall(b"POST /images HTTP/1.1\r\nHost: x\r\n" + headers
                     + b"Content-Type: multipart/form-data; boundary=b\r\n"
                     + f"Content-Length: {MAX_UPLOAD * 4}\r\n\r\n".encode())
        try:
            for _ in range(200):
                sock.sendall(b"x" * 16384)
        except OSError:
            pass  # the server answered and closed: exactly what should happen
        finally:
            sock.close()
    time.sleep(0.5)
    with guarded.client() as client:
        assert client.get("/healthz").status_code == 200
    log = guarded.log.read_text()
    assert "Traceback" not in log and "Fatal error" not in log, log[-3000:]


def trickle_until_closed(sock: socket.socket, interval: float, limit: float) -> float:
    """Send a byte every ``interval`` seconds; seconds until the server closed ``sock``."""
    start = time.monotonic()
    sock.settimeout(interval)
    with sock:
        while time.monotonic() - start < limit:
            try:
                sock.sendall(b"x")
                if not sock.recv(4096):
                    return time.monotonic() - start
            except TimeoutError:
                continue
            except OSError:  # reset: closed too
                return time.monotonic() - start
    return math.inf


def test_a_body_trickled_a_byte_a_second_is_closed_at_its_deadline(capped: Server) -> None:
    sock = connect(capped)
    sock.sendall(b"POST /search HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                 b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
    took = trickle_until_closed(sock, 1.0, BODY_DEADLINE_S * 4)
    print(f"a body trickled at 1 byte/s closed after {took:.2f} s "
          f"(deadline {BODY_DEADLINE_S} s, idle timeout {BODY_TIMEOUT_S} s)")
    assert BODY_DEADLINE_S - 0.2 <= took <= BODY_DEADLINE_S + SLACK_S
    with capped.client() as client:
        assert client.get("/healthz").status_code == 200


def test_beyond_the_connection_cap_a_request_gets_the_json_503(capped: Server) -> None:
    idle = [connect(capped) for _ in range(MAX_CONNECTIONS)]
    time.sleep(0.5)  # accepted by the server: they count as open
    try:
        with capped.client() as client:
            refused = client.get("/healthz")
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/json"
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["error"] == "too_many_connections"
        assert str(MAX_CONNECTIONS) in refused.json()["detail"]
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.5)
    with capped.client() as client:
        assert client.get("/healthz").status_code == 200
