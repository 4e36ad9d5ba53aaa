"""Request keys (``Idempotency-Key``) kept in Milvus, so a retry through any replica replays.

An add with a request key works out its whole answer first (which items are new, their ids from
the allocator, which are duplicates of what), saves that *plan* under the key in the meta
collection (``req:<sha256 of the key>``: the fingerprint of the request's content, the time and
every record, in order), and only then writes the new images, in one upsert. So a key's plan is
readable before any of its images is, and:

* a plan marked done (after its images were written), or whose new images are all stored, is the
  committed answer: a retry replays it (an image of it removed since stays removed);
* a plan whose images are not stored (the writer died, or Milvus failed, between the plan and the
  upsert) is *adopted* by the retry: it writes the same records under the same ids, so the
  answer is the one the first request would have given (its content claims are taken again
  first, see :mod:`._claims`). Two writers adopting at once write the same rows (an upsert of
  one id is idempotent).

Milvus gives an insert request one timestamp, so a Strong read sees all of a request's images or
none of them. Keys older than the TTL are ignored (and overwritten by the next add with that
key); their rows stay in the meta collection. A key sent again with other content is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from retrieval.errors import ArtifactError, ConfigError
from retrieval.index._records import Added, AddOutcome
from retrieval.index.milvus._schema import get_text, load_blob, put_text, save_blob

__all__ = ["Plan", "is_done", "load_plan", "mark_done", "save_plan"]


@dataclass(frozen=True)
class Plan:
    """The answer an add with a request key is about to give (or gave)."""

    fingerprint: str
    at: float
    outcome: AddOutcome

    def check(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise ConfigError("this Idempotency-Key was already used for a request with other "
                              "content; use a new key for a new request")


def _row(key: str) -> str:
    return "req:" + hashlib.sha256(key.encode()).hexdigest()


def save_plan(client: Any, meta: str, key: str, plan: Plan) -> None:
    body = {"fingerprint": plan.fingerprint, "at": plan.at,
            "added": [asdict(a) for a in plan.outcome.added]}
    save_blob(client, meta, _row(key), json.dumps(body, separators=(",", ":")).encode())


def load_plan(client: Any, meta: str, key: str, oldest: float) -> Plan | None:
    """The plan saved under ``key`` at or after ``oldest``; None if there is none (or only a torn
    one: two adds with one key at once)."""
    try:
        data = load_blob(client, meta, _row(key))
    except ArtifactError:
        return None
    if data is None:
        return None
    body = json.loads(data)
    if float(body["at"]) < oldest:
        return None
    added = [Added(**{**a, "tags": tuple(a.get("tags", ()))}) for a in body["added"]]
    return Plan(str(body["fingerprint"]), float(body["at"]), AddOutcome(added))


def mark_done(client: Any, meta: str, key: str, plan: Plan) -> None:
    """The plan's images are written (after that, a removed image stays removed on a retry)."""
    put_text(client, meta, _row(key) + ":done", repr(plan.at))


def is_done(client: Any, meta: str, key: str, plan: Plan) -> bool:
    """Whether ``plan`` (not an older one under the same key) was marked done."""
    return get_text(client, meta, _row(key) + ":done") == repr(plan.at)
