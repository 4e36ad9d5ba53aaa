"""Slow and misbehaving clients: uvicorn's h11 protocol with deadlines and quiet protocol errors.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and, with
``limit_concurrency``, answers 503 beyond a number of connections, but it waits forever for the
headers of a request that has begun and for body bytes that never come. :func:`guarded_protocol`
makes an :class:`~uvicorn.protocols.http.h11_impl.H11Protocol` that also

* closes a connection whose request headers are not complete ``header_timeout`` seconds after it
  opened, or after the previous response (a total, not an idle time: trickling bytes buys nothing);
* closes a connection that sends no body byte for ``body_timeout`` seconds while the app is
  reading the body (the app then sees a disconnect);
* drops, with one DEBUG line instead of asyncio's ERROR traceback, a client that keeps sending
  after the server has answered and closed (e.g. the rest of a body refused with 413).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["guarded_protocol"]

log = logging.getLogger(__name__)


class _GuardedH11Protocol(H11Protocol):
    header_timeout = 10.0
    body_timeout = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        try:
            super().data_received(data)
        except (h11.ProtocolError, RuntimeError) as exc:
            log.debug("dropping a connection that kept sending after an error: %s", exc)
            self._disarm()
            self.transport.close()
            return
        if self.conn.their_state is h11.SEND_BODY:
            answered = self.cycle is not None and self.cycle.response_complete
            if not (answered and self._deadline is not None):
                self._arm(self.body_timeout)  # progress (unless answered: then a total)
        elif self.conn.their_state is not h11.IDLE:
            self._disarm()  # headers complete (and the body, if any): the app has it

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm(self.header_timeout)  # the next request's headers

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.SEND_BODY and self.flow.read_paused:
            self._arm(self.body_timeout)  # the app is not reading: not the client's fault
            return
        if state is h11.IDLE or state is h11.SEND_BODY:
            what = "headers" if state is h11.IDLE else "body"
            log.info("closing a connection from %s: no complete request %s in time",
                     self.client, what)
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True
            self.transport.close()


def guarded_protocol(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """An h11 protocol class for ``uvicorn.Config(http=...)`` with these deadlines (seconds)."""
    return type("GuardedH11Protocol", (_GuardedH11Protocol,),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
