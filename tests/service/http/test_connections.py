"""The deadlines and the connection cap of :mod:`service.http.connections`, driven through
uvicorn's real h11 protocol (in memory: a recording transport, no socket), and a loud check that
the uvicorn internals the subclass reads are still there (``pyproject.toml`` pins uvicorn to the
series checked here)."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import pytest
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle
from uvicorn.server import ServerState

from service.__main__ import uvicorn_config
from service.http.connections import guarded_protocol
from service.settings import Settings

TIMEOUT_S = 0.05
#: What the guarded protocol reads or overrides of uvicorn's (see service/http/connections.py).
PROTOCOL_ATTRIBUTES = ("conn", "cycle", "flow", "transport", "loop", "client", "app",
                       "connections", "tasks")
PROTOCOL_METHODS = ("connection_made", "connection_lost", "data_received",
                    "on_response_complete")
CYCLE_ATTRIBUTES = ("response_complete", "disconnected")
FLOW_ATTRIBUTES = ("read_paused",)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Transport(asyncio.Transport):
    """Records what the server writes; ``close`` tells the protocol soon, as asyncio does."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: asyncio.Protocol | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        if not self.closed and self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class App:
    """Answers 200 once it has read the whole body; records a disconnect."""

    def __init__(self) -> None:
        self.disconnected = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def connect(app: App, server_state: ServerState | None = None, timeout: float = TIMEOUT_S,
            **options: Any) -> tuple[H11Protocol, Transport]:
    config = Config(app, log_config=None, timeout_keep_alive=60, lifespan="off")
    protocol_class = guarded_protocol(timeout, timeout, **options)
    protocol = protocol_class(config=config, server_state=server_state or ServerState(),
                              app_state={}, _loop=asyncio.get_running_loop())
    transport = Transport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport


def missing(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def test_the_uvicorn_internals_it_reads_are_still_there() -> None:
    hint = (f"uvicorn {uvicorn.__version__} moved internals that service/http/connections.py "
            "reads: adapt it and the uvicorn pin in pyproject.toml")
    gone = [m for m in PROTOCOL_METHODS if not callable(getattr(H11Protocol, m, None))]
    assert not gone, f"H11Protocol has no method {gone}; {hint}"
    parameters = list(inspect.signature(H11Protocol.on_response_complete).parameters)
    assert parameters == ["self"], f"H11Protocol.on_response_complete{parameters}; {hint}"

    async def scenario() -> None:
        protocol, _ = connect(App())
        assert not missing(protocol, PROTOCOL_ATTRIBUTES), (
            f"H11Protocol has no attribute {missing(protocol, PROTOCOL_ATTRIBUTES)}; {hint}")
        assert isinstance(protocol.conn, h11.Connection), f"H11Protocol.conn; {hint}"
        assert not missing(protocol.flow, FLOW_ATTRIBUTES), (
            f"FlowControl has no attribute {missing(protocol.flow, FLOW_ATTRIBUTES)}; {hint}")
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        assert isinstance(protocol.cycle, RequestResponseCycle), f"H11Protocol.cycle; {hint}"
        assert not missing(protocol.cycle, CYCLE_ATTRIBUTES), (
            f"RequestResponseCycle has no attribute {missing(protocol.cycle, CYCLE_ATTRIBUTES)}; "
            f"{hint}")
        protocol.connection_lost(None)

    asyncio.run(scenario())


def test_incomplete_headers_are_cut_off_after_the_header_timeout() -> None:
    async def scenario() -> None:
        protocol, transport = connect(App())
        protocol.data_received(b"GET / HTTP/1.1\r\nHo")
        await asyncio.sleep(TIMEOUT_S / 2)
        protocol.data_received(b"st: x\r\n")  # trickling bytes buys nothing: a total deadline
        assert not transport.closed
        await asyncio.sleep(TIMEOUT_S)
        assert transport.closed and not transport.written

    asyncio.run(scenario())


def test_a_stalled_body_is_cut_off_and_the_app_sees_a_disconnect() -> None:
    async def scenario() -> None:
        app = App()
        protocol, transport = connect(app)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        for _ in range(4):  # progress re-arms the body deadline
            await asyncio.sleep(TIMEOUT_S / 2)
            protocol.data_received(b"c")
        assert not transport.closed
        await asyncio.sleep(TIMEOUT_S * 3)
        assert transport.closed and app.disconnected and not transport.written

    asyncio.run(scenario())


def test_a_trickled_body_is_cut_off_at_the_total_deadline() -> None:
    timeout, deadline = 0.3, 0.6

    async def scenario() -> None:
        app = App()
        loop = asyncio.get_running_loop()
        protocol, transport = connect(app, timeout=timeout, body_deadline=deadline)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99\r\n\r\na")
        start = loop.time()
        while not transport.closed and loop.time() - start < 3 * deadline:
            await asyncio.sleep(0.05)  # a byte well within the idle timeout, every time
            protocol.data_received(b"b")
        took = loop.time() - start
        assert transport.closed and app.disconnected and not transport.written
        assert deadline <= took < deadline + 0.5

    asyncio.run(scenario())


def test_each_body_has_its_own_deadline_from_its_headers() -> None:
    timeout, deadline = 0.2, 0.5

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        protocol, transport = connect(App(), timeout=timeout, body_deadline=deadline)
        start = loop.time()
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nh")
        await asyncio.sleep(0.1)
        protocol.data_received(b"i")  # the first body, complete well in time
        await asyncio.sleep(0.1)
        assert transport.written.startswith(b"HTTP/1.1 200")
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        sent = 0
        while loop.time() - start < deadline + 0.1:  # past the first body's deadline
            await asyncio.sleep(0.05)
            protocol.data_received(b"b")
            sent += 1
        assert not transport.closed
        protocol.data_received(b"b" * (100 - sent))
        await asyncio.sleep(0.02)
        assert transport.written.count(b"HTTP/1.1 200") == 2

    asyncio.run(scenario())


def test_beyond_the_cap_a_request_gets_the_json_503_with_retry_after() -> None:
    async def scenario() -> None:
        state = ServerState()
        app = App()
        others, _ = connect(app, state, max_connections=2)
        protocol, transport = connect(app, state, max_connections=2)
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # 2 open: served
        await asyncio.sleep(TIMEOUT_S / 5)
        assert transport.written.startswith(b"HTTP/1.1 200")
        third, refused = connect(app, state, max_connections=2)
        third.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(TIMEOUT_S / 5)
        head, _, body = bytes(refused.written).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        headers = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"retry-after"] == b"1" and headers[b"connection"] == b"close"
        assert json.loads(body)["error"] == "too_many_connections"
        assert refused.closed
        for p in (others, protocol):
            p.connection_lost(None)

    asyncio.run(scenario())


def test_uvicorn_s_own_plain_text_cap_stays_off(tmp_path: Any) -> None:
    config = uvicorn_config(App(), Settings(index_dir=tmp_path, max_connections=7), "warning")
    assert config.limit_concurrency is None
    assert isinstance(config.http, type) and issubclass(config.http, H11Protocol)
    assert config.http.max_connections == 7  # type: ignore[attr-defined]


def test_after_a_response_the_next_headers_have_the_deadline_again() -> None:
    async def scenario() -> None:
        protocol, transport = connect(App())
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        await asyncio.sleep(TIMEOUT_S / 5)  # the app answers; the connection is kept alive
        assert transport.written.startswith(b"HTTP/1.1 200") and not transport.closed
        await asyncio.sleep(TIMEOUT_S * 2)  # long before keep-alive (60 s) would close it
        assert transport.closed

    asyncio.run(scenario())


def test_data_after_the_server_closed_is_dropped_quietly(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        protocol, transport = connect(App())
        protocol.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(TIMEOUT_S / 5)
        assert transport.written.startswith(b"HTTP/1.1 200")
        protocol.data_received(b"more bytes nobody asked for")  # raises inside h11: caught
        assert transport.closed

    with caplog.at_level("DEBUG", logger="service.http.connections"):
        asyncio.run(scenario())
    assert "dropping a connection that kept sending" in caplog.text
