"""Milvus failures as :class:`~retrieval.errors.RetrievalError`\\ s, and collections loaded on open.

Every pymilvus call the engine makes goes through a :class:`GuardedClient`: a pymilvus (or grpc)
exception leaves it as a :class:`StoreUnavailableError` (the server cannot be reached) or a
:class:`StoreError` (it refused the call), with one sentence naming the URI and the call. A call
refused because its collection is not loaded (a Milvus Lite database reopened by a new process,
a server that restarted and loads in the background) loads the collection, waiting at most
:data:`IN_CALL_LOAD_S` (opening an index waits :data:`LOAD_TIMEOUT_S`), and is tried once more.
Every data call has a deadline (:data:`CALL_TIMEOUT_S`), so a server that is down, starting or
loading fails a call within seconds (the service answers 503) rather than after pymilvus's own
minute of retries.

Milvus Lite runs its grpc server inside this process; two of its log records would print
tracebacks for things that are not failures of ours, so a filter keeps their message and drops the
traceback; pymilvus prints a traceback of every failed call on its own handler, which is dropped:
the failure is raised (:func:`quiet_lite_logs`).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from retrieval.errors import StoreError, StoreTimeoutError, StoreUnavailableError

__all__ = ["CALL_TIMEOUT_S", "IN_CALL_LOAD_S", "LOAD_TIMEOUT_S", "GuardedClient", "ensure_loaded",
           "quiet_lite_logs", "translate"]

log = logging.getLogger(__name__)

#: How long opening an index waits for Milvus to load a collection (a restarted server loads
#: ~18 collections in about a minute).
LOAD_TIMEOUT_S = 120.0
#: How long a call that finds its collection not loaded (a server that restarted and loads in the
#: background) waits for it before it fails as :class:`StoreTimeoutError` (the service: a 503).
IN_CALL_LOAD_S = 5.0
#: The longest one data call may take (pymilvus otherwise retries an unreachable server for a
#: minute or more): a server that is starting fails the call as :class:`StoreTimeoutError`.
CALL_TIMEOUT_S = 15.0
_TIMED = frozenset({"query", "get", "search", "insert", "upsert", "delete", "has_collection",
                    "get_load_state", "describe_index", "list_collections"})
LOAD_POLL_S = 0.05
_NOT_LOADED = 101           # Milvus's "collection not loaded" / "in state 'released'"
_UNREACHABLE = (2, 503)     # pymilvus's "Fail connecting to server", Milvus's "service unavailable"
#: Words of a refusal that lasts only while a server starts or stops (the call may be retried).
_TRANSIENT = ("unavailable", "connect", "not ready", "not healthy", "unhealthy", "is stopping")


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or "")
    if not text and hasattr(exc, "details"):
        text = str(exc.details() or "")
    return " ".join((text or type(exc).__name__).split())


def is_milvus_error(exc: BaseException) -> bool:
    """A pymilvus or grpc exception (what a Milvus call raises when it fails)."""
    from pymilvus.exceptions import MilvusException

    rpc_error: type[BaseException] = importlib.import_module("grpc").RpcError
    return isinstance(exc, (MilvusException, rpc_error))


def _not_loaded(exc: BaseException) -> bool:
    text = _message(exc).lower()
    return getattr(exc, "code", None) == _NOT_LOADED or "not loaded" in text or "'released'" in text


def translate(exc: BaseException, uri: str, what: str) -> StoreError | StoreTimeoutError:
    """One readable sentence for a failed Milvus call ``what`` against ``uri``."""
    code = getattr(exc, "code", None)
    reason = _message(exc)
    if "deadline" in reason.lower() or "timeout" in reason.lower():
        return StoreTimeoutError(f"Milvus at {uri} did not answer {what} in time: {reason}")
    if code in _UNREACHABLE or any(w in reason.lower() for w in _TRANSIENT):
        return StoreUnavailableError(f"cannot reach Milvus at {uri} ({what}): {reason}")
    if "open local milvus failed" in reason.lower():
        return StoreUnavailableError(
            f"cannot open the Milvus Lite database {uri}: {reason} (it admits one process at a "
            "time: is another process using it? Is it a Milvus Lite database?)")
    return StoreError(f"Milvus at {uri} refused {what}: {reason}")


def ensure_loaded(client: Any, names: Sequence[str], uri: str,
                  timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Load each collection not loaded yet and wait until all are; :class:`StoreTimeoutError`
    naming the progress when one is still loading after ``timeout_s`` (polled at least once)."""
    from pymilvus.client.types import LoadState

    deadline = time.monotonic() + timeout_s
    waiting = []
    for name in names:  # ask for every load first: Milvus loads them side by side
        state = client.get_load_state(name)["state"]
        if state == LoadState.NotExist:
            raise StoreError(f"collection {name!r} does not exist at {uri}")
        if state != LoadState.Loaded:
            log.info("loading Milvus collection %r at %s", name, uri)
            if state == LoadState.NotLoad:
                client.load_collection(name, _async=True)
            waiting.append(name)
    for name in waiting:
        while (now := client.get_load_state(name))["state"] != LoadState.Loaded:
            if time.monotonic() >= deadline:
                raise StoreTimeoutError(
                    f"Milvus collection {name!r} at {uri} is still loading after {timeout_s:g} s "
                    f"({now.get('progress', 0)}% loaded); try again when the server has loaded it")
            time.sleep(LOAD_POLL_S)


class GuardedClient:
    """A pymilvus ``MilvusClient`` whose failures are :class:`StoreError`\\ s (see the module)."""

    def __init__(self, client: Any, uri: str, load_timeout_s: float = IN_CALL_LOAD_S,
                 call_timeout_s: float = CALL_TIMEOUT_S) -> None:
        self._client = client
        self._uri = uri
        self._load_timeout_s = load_timeout_s
        self._call_timeout_s = call_timeout_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, attr, args, kwargs)

        return call

    def _call(self, name: str, attr: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> Any:
        what = f"{name}({args[0]!r})" if args and isinstance(args[0], str) else f"{name}()"
        if name in _TIMED:
            kwargs.setdefault("timeout", self._call_timeout_s)
        try:
            try:
                return attr(*args, **kwargs)
            except Exception as exc:
                if not (is_milvus_error(exc) and _not_loaded(exc) and args
                        and isinstance(args[0], str)):
                    raise
                ensure_loaded(self._client, [args[0]], self._uri, self._load_timeout_s)
                return attr(*args, **kwargs)
        except Exception as exc:
            if is_milvus_error(exc):
                raise translate(exc, self._uri, what) from exc
            raise


class _NoTraceback(logging.Filter):
    """Keep a record's message, drop its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            record.msg = f"{record.getMessage()}: {record.exc_info[1]}"
            record.args = None
            record.exc_info = None
        return True


class _NoRpcErrors(logging.Filter):
    """Drop pymilvus's own report of a failed call (a traceback on its own stderr handler): the
    engine raises the failure as a :class:`StoreError`, which the edges report once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "_log_rpc_error"


class _NoLiteTimestampWarning(logging.Filter):
    """Milvus Lite has no MVCC timestamp for a query iterator; pymilvus warns and uses its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("failed to get mvccTs")


_QUIET = {"milvus_lite.server_manager": _NoTraceback(), "grpc._server": _NoTraceback(),
          "pymilvus.client.connection_manager": _NoTraceback(),
          "pymilvus.decorators": _NoRpcErrors(),
          "pymilvus.client.iterator.query_iterator": _NoLiteTimestampWarning()}


def quiet_lite_logs() -> None:
    """No tracebacks from the client: Milvus Lite's start failure and its in-process grpc
    server's "Method not implemented" keep one line each; pymilvus's reports of failed calls go
    (their failure is raised)."""
    for name, quiet in _QUIET.items():
        logger = logging.getLogger(name)
        if quiet not in logger.filters:
            logger.addFilter(quiet)
