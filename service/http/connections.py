"""Slow, misbehaving and surplus clients: uvicorn's h11 protocol with deadlines, a connection cap
answered in JSON, and quiet protocol errors.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), but it waits forever for the
headers of a request that has begun and for body bytes that never come, and its own connection cap
(``limit_concurrency``) answers a plain-text 503 without ``Retry-After``. :func:`guarded_protocol`
makes an :class:`~uvicorn.protocols.http.h11_impl.H11Protocol` that

* closes a connection whose request headers are not complete ``header_timeout`` seconds after it
  opened, or after the previous response (a total, not an idle time: trickling bytes buys nothing);
* closes a connection that sends no body byte for ``body_timeout`` seconds while the app is
  reading the body, or whose body is not complete ``body_deadline`` seconds after its headers
  (a total: a body trickled a byte a second is cut off too); the app then sees a disconnect;
* answers a request on a connection beyond ``max_connections`` open ones with the service's JSON
  error (503 ``too_many_connections``, ``Retry-After``) and closes that connection; uvicorn's
  ``limit_concurrency`` is left unset so its plain-text answer never comes;
* drops, with one DEBUG line instead of asyncio's ERROR traceback, a client that keeps sending
  after the server has answered and closed (e.g. the rest of a body refused with 413).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["guarded_protocol"]

log = logging.getLogger(__name__)

Message = dict[str, Any]


class _GuardedH11Protocol(H11Protocol):
    header_timeout = 10.0
    body_timeout = 30.0
    body_deadline: float | None = None
    max_connections: int | None = None
    retry_after_s = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._body_total: asyncio.TimerHandle | None = None
        self._inner_app = self.app
        if self.max_connections is not None:
            self.app = self._capped

    # -- the connection cap -------------------------------------------------------------------

    async def _capped(self, scope: Message, receive: Any, send: Any) -> None:
        """The app, unless more than ``max_connections`` are open (then the JSON 503)."""
        cap = self.max_connections
        if scope["type"] != "http" or cap is None or (
                len(self.connections) <= cap and len(self.tasks) <= cap):
            await self._inner_app(scope, receive, send)
            return
        log.warning("refusing a request from %s: more than %d connections are open",
                    self.client, cap)
        body = json.dumps({"error": "too_many_connections",
                           "detail": f"the server already has {cap} open connections; retry "
                                     "shortly"}).encode()
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(self.retry_after_s).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- deadlines ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._track_body(lost=True)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except (h11.ProtocolError, RuntimeError) as exc:
            log.debug("dropping a connection that kept sending after an error: %s", exc)
            self._disarm()
            self._track_body(lost=True)
            self.transport.close()
            return
        if self.conn.their_state is h11.SEND_BODY:
            answered = self.cycle is not None and self.cycle.response_complete
            if not (answered and self._deadline is not None):
                self._arm(self.body_timeout)  # progress (unless answered: then a total)
        elif self.conn.their_state is not h11.IDLE:
            self._disarm()  # headers complete (and the body, if any): the app has it
        self._track_body()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(self.header_timeout)  # the next request's headers
        self._track_body()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _track_body(self, *, lost: bool = False) -> None:
        """Start the body's total deadline when its headers are in; stop it once it is."""
        sending = not lost and self.conn.their_state is h11.SEND_BODY
        if sending and self._body_total is None and self.body_deadline is not None:
            self._body_total = self.loop.call_later(self.body_deadline, self._body_overdue)
        elif not sending and self._body_total is not None:
            self._body_total.cancel()
            self._body_total = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY and self.flow.read_paused:
            self._arm(self.body_timeout)  # the app is not reading: not the client's fault
            return
        if state is h11.IDLE or state is h11.SEND_BODY:
            self._cut_off("headers" if state is h11.IDLE else "body",
                          self.header_timeout if state is h11.IDLE else self.body_timeout)

    def _body_overdue(self) -> None:
        self._body_total = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        if self.flow.read_paused:  # the app is not reading: look again later
            self._body_total = self.loop.call_later(self.body_timeout, self._body_overdue)
            return
        self._cut_off("body", self.body_deadline, total=True)

    def _cut_off(self, what: str, seconds: float | None, *, total: bool = False) -> None:
        log.info("closing a connection from %s: no complete request %s %s %s s", self.client,
                 what, "within" if total else "in", seconds)
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
        self._disarm()
        self._track_body(lost=True)
        self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float, *,
                     body_deadline: float | None = None, max_connections: int | None = None,
                     retry_after_s: int = 1) -> type[H11Protocol]:
    """An h11 protocol class for ``uvicorn.Config(http=...)`` with these deadlines (seconds)
    and connection cap (pass no ``limit_concurrency`` to uvicorn then)."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout,
                 "body_deadline": body_deadline, "max_connections": max_connections,
                 "retry_after_s": retry_after_s})
