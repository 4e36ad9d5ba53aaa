"""A bounded pool for CPU-heavy work (decoding, the forward pass, FAISS), off the event loop.

``workers`` threads run jobs; up to ``queue_depth`` more may wait for a thread. A job submitted
when ``workers + queue_depth`` are already admitted is refused at once with
:class:`QueueFullError` (the service answers 503 with ``Retry-After``) instead of piling up
latency. A job counts until its thread finishes it, even when the client that asked has gone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["InferencePool", "QueueFullError"]

T = TypeVar("T")


class QueueFullError(Exception):
    """Every worker is busy and the waiting queue is full."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        super().__init__(f"the inference queue is full ({capacity} requests admitted)")


class InferencePool:
    """``workers`` threads plus a queue of ``queue_depth``; see the module docstring."""

    def __init__(self, workers: int, queue_depth: int) -> None:
        if workers < 1 or queue_depth < 0:
            raise ValueError(f"need workers >= 1 and queue_depth >= 0, got {workers}, "
                             f"{queue_depth}")
        self.workers = workers
        self.capacity = workers + queue_depth
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inference")
        self._lock = threading.Lock()
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            return self._admitted

    @property
    def waiting(self) -> int:
        """Jobs admitted but not yet running (an upper bound: threads may be about to start)."""
        return max(0, self.admitted - self.workers)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Admit ``fn`` or raise :class:`QueueFullError`; the slot is freed when it finishes."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFullError(self.capacity)
            self._admitted += 1
        try:
            future = self._executor.submit(fn)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _: self._release())
        return future

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the pool and await its result."""
        return await asyncio.wrap_future(self.submit(fn))

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def shutdown(self) -> None:
        """Finish the admitted jobs and stop the threads."""
        self._executor.shutdown(wait=True)
