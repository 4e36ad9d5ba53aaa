"""One record per content across every process that writes a collection: claims, smallest wins.

Milvus has no compare-and-set, so "is this content stored? if not, store it" cannot be one call.
An add that is about to store new content first *claims* it: it inserts a row into
``<name>_claims`` — an ``auto_id`` ticket from Milvus's allocator (keys only grow, see
:mod:`._ids`), the sha256, the id of the image it is about to write and the claimer's clock —
then reads every claim of those sha256s (Strong consistency: every acknowledged insert of any
process). For each content, claims are walked in ticket order:

* the claimer's own claim first (or an earlier one for the same image id: a retry adopting a
  saved plan, :mod:`._keys`): it won, and writes its image;
* a claim whose image is stored: that image is the content's record (the add answers
  ``duplicate``, and drops its own claim);
* a claim older than :data:`CLAIM_LEASE_S` whose image is not stored: its writer died (or the
  store failed under it) between claiming and writing; the claim is deleted and skipped;
* a younger claim whose image is not stored yet: its writer is between claiming and writing
  (a few Milvus calls): the add waits for it (polling) and walks again — as it does while its
  own claim is not readable yet (a server that just restarted answered a Strong read without a
  row inserted just before; the next reads had it).

How atomic this is: two adds of one content through any replicas store it once, unless a claim
with a *smaller* ticket becomes readable only after a larger one was read — Milvus allocates a
ticket and the insert's timestamp in the same call of the proxy, so that needs two inserts
reordered between those two steps (microseconds; never seen here). The lease assumes the
writers' clocks agree to well within :data:`CLAIM_LEASE_S`. Removing an image drops its claims.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from pymilvus import DataType, MilvusClient

from retrieval.errors import StoreTimeoutError

__all__ = ["CLAIM_LEASE_S", "claim", "claims_of", "create_claims", "drop_claims"]

#: How long a claim whose image is not stored yet holds its content for its writer.
CLAIM_LEASE_S = 15.0
CLAIM_POLL_S = 0.05
_DUMMY = [0.0, 0.0]
_FIELDS = ["ticket", "sha256", "image", "at"]


def claims_of(name: str) -> str:
    return f"{name}_claims"


def create_claims(client: Any, name: str) -> None:
    """The claims collection of the image collection ``name`` (``auto_id`` tickets)."""
    schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("ticket", DataType.INT64, is_primary=True)
    schema.add_field("sha256", DataType.VARCHAR, max_length=64)
    schema.add_field("image", DataType.INT64)
    schema.add_field("at", DataType.DOUBLE)
    schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index(field_name="dummy", index_type="FLAT", metric_type="L2")
    client.create_collection(claims_of(name), schema=schema, consistency_level="Strong")
    client.create_index(claims_of(name), params, sync=False)


Exists = Callable[[list[int]], set[int]]


def claim(client: Any, name: str, wanted: Mapping[str, int], exists: Exists, *,
          lease_s: float = CLAIM_LEASE_S, clock: Callable[[], float] = time.time) -> dict[str, int]:
    """For each ``sha256 -> image id`` about to be written, the id that holds that content: the
    one asked (this call won) or a stored image's (see the module). Lost claims are dropped."""
    if not wanted:
        return {}
    rows = [{"sha256": s, "image": int(i), "at": clock(), "dummy": _DUMMY}
            for s, i in wanted.items()]
    mine = dict(zip(wanted, (int(t) for t in client.insert(claims_of(name), rows)["ids"]),
                    strict=True))
    deadline = time.monotonic() + 2 * lease_s
    held: dict[str, int] = {}
    while True:
        claims = _read(client, name, [s for s in wanted if s not in held])
        stored = exists(sorted({c["image"] for rows in claims.values() for c in rows}))
        dead: list[int] = []
        for sha, rows in claims.items():
            winner = _walk(rows, (mine[sha], wanted[sha]), stored, dead, clock() - lease_s)
            if winner is not None:
                held[sha] = winner
        if dead:
            client.delete(claims_of(name), ids=dead)
        if len(held) == len(wanted):
            break
        if time.monotonic() > deadline:
            raise StoreTimeoutError(f"content claims in {claims_of(name)} still wait for their "
                                    f"writers after {2 * lease_s:g} s")
        time.sleep(CLAIM_POLL_S)
    lost = [mine[s] for s, i in held.items() if i != wanted[s]]
    if lost:
        client.delete(claims_of(name), ids=lost)
    return held


def _read(client: Any, name: str, shas: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {s: [] for s in shas}
    rows = client.query(claims_of(name), filter=f"sha256 in {json.dumps(shas)}",
                        output_fields=_FIELDS, consistency_level="Strong")
    for row in rows:
        found[str(row["sha256"])].append({k: row[k] for k in _FIELDS})
    return found


def _walk(rows: list[dict[str, Any]], mine: tuple[int, int], stored: set[int], dead: list[int],
          oldest: float) -> int | None:
    """The winning image id of one content's claims (``mine``: this call's ticket and image
    id), or None while an earlier one is pending."""
    for row in sorted(rows, key=lambda r: int(r["ticket"])):
        ticket, image = int(row["ticket"]), int(row["image"])
        if ticket == mine[0] or image == mine[1] or image in stored:
            return image
        if float(row["at"]) < oldest:
            dead.append(ticket)
            continue
        return None
    return None  # this call's own claim is not readable yet (seen just after a server restart)


def drop_claims(client: Any, name: str, image_ids: list[int]) -> None:
    """Forget the claims of removed images (their content may be added again at once)."""
    if image_ids:
        client.delete(claims_of(name), filter=f"image in {[int(i) for i in image_ids]}")
