"""Milvus failures become one-sentence store errors; released collections are loaded on use.

The fakes stand in for pymilvus's ``MilvusClient`` (the seam: :class:`GuardedClient` wraps
whatever client it is given), raising the exceptions pymilvus raises.
"""

from __future__ import annotations

from typing import Any

import pytest

from retrieval.errors import StoreError, StoreTimeoutError, StoreUnavailableError

pytest.importorskip("pymilvus", reason="pip install -e '.[milvus]'")

from pymilvus.client.types import LoadState
from pymilvus.exceptions import MilvusException

from retrieval.index.milvus._guard import GuardedClient, ensure_loaded

URI = "http://127.0.0.1:19530"


class _Released:
    """A collection that is released until ``load_collection``, loading for ``loading`` polls."""

    def __init__(self, loading: int) -> None:
        self.loading = loading
        self.loads = 0
        self.queries = 0

    def get_load_state(self, name: str) -> dict[str, Any]:
        if not self.loads:
            return {"state": LoadState.NotLoad}
        if self.loading > 0:
            self.loading -= 1
            return {"state": LoadState.Loading, "progress": 40}
        return {"state": LoadState.Loaded}

    def load_collection(self, name: str, **kwargs: Any) -> None:
        self.loads += 1

    def query(self, name: str, **kwargs: Any) -> list[dict[str, int]]:
        self.queries += 1
        if self.get_load_state(name)["state"] != LoadState.Loaded:
            raise MilvusException(101, f"Collection '{name}' is in state 'released'; call load()")
        return [{"count(*)": 3}]


def test_a_released_collection_is_loaded_and_the_call_retried() -> None:
    fake = _Released(loading=3)
    assert GuardedClient(fake, URI).query("c", filter="") == [{"count(*)": 3}]
    assert fake.loads == 1 and fake.queries == 2


def test_loading_that_does_not_finish_times_out_with_its_progress() -> None:
    fake = _Released(loading=10**9)
    with pytest.raises(StoreTimeoutError,
                       match=r"'c' at http://\S+ is still loading after 0\.2 s \(40% loaded\)"):
        ensure_loaded(fake, ["c"], URI, timeout_s=0.2)


class _Failing:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def search(self, name: str, **kwargs: Any) -> None:
        raise self.exc


@pytest.mark.parametrize(("exc", "kind", "words"), [
    (MilvusException(2, "Fail connecting to server on 127.0.0.1:1"), StoreUnavailableError,
     "cannot reach Milvus at http://127.0.0.1:19530 (search('c')): "
     "Fail connecting to server on 127.0.0.1:1"),
    (MilvusException(1100, "invalid parameter\n  [ef=1 < k]"), StoreError,
     "Milvus at http://127.0.0.1:19530 refused search('c'): invalid parameter [ef=1 < k]"),
])
def test_every_milvus_failure_is_one_sentence(exc: Exception, kind: type[StoreError],
                                              words: str) -> None:
    with pytest.raises(kind) as raised:
        GuardedClient(_Failing(exc), URI).search("c", data=[])
    assert str(raised.value) == words and raised.value.__cause__ is exc


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(ZeroDivisionError):
        GuardedClient(_Failing(ZeroDivisionError()), URI).search("c")
