"""Image ids unique across every process that writes a collection: tickets from Milvus itself.

Milvus has no compare-and-set, so a counter row cannot be shared by writers. What it does have is
its own id allocator: a row inserted into a collection with ``auto_id`` gets a primary key no other
insert — from any process, through any proxy, before or after a restart — ever gets again, and
keys only grow. ``<name>_ids`` is such a collection of tickets (a key and a 2-d dummy vector,
since every Milvus collection needs one); an add inserts one ticket per image and uses
``key - base`` as the image's id, ``base`` being the key of a ticket taken when the index is
created (kept in the meta collection as ``id_base``), so the first image is id 1 on Lite. So ids
are unique without any lock or single-writer rule, and never reused. Tickets are kept (deleting
them could let Milvus Lite, which numbers from its largest stored key, hand one out again).

A Milvus Lite database numbers tickets 1, 2, 3…; a server's allocator is timestamp-based
(``physical_ms << 18``), so ids there are sparse and grow with time, by up to 2^18 per
millisecond of allocation: they stay below 2^53 (JSON-safe in JavaScript) for about a year of
allocation. Indexes made before tickets existed keep their ``next_id`` counter (one writer at a
time).
"""

from __future__ import annotations

from typing import Any

from pymilvus import DataType, MilvusClient

__all__ = ["TICKET_ROWS_PER_CALL", "create_tickets", "take_tickets", "tickets_of"]

TICKET_ROWS_PER_CALL = 10_000
_DUMMY = [0.0, 0.0]


def tickets_of(name: str) -> str:
    return f"{name}_ids"


def create_tickets(client: Any, name: str) -> None:
    """The ticket collection of the image collection ``name`` (``auto_id`` keys)."""
    schema = MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
    schema.add_field("ticket", DataType.INT64, is_primary=True)
    schema.add_field("dummy", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index(field_name="dummy", index_type="FLAT", metric_type="L2")
    client.create_collection(tickets_of(name), schema=schema, consistency_level="Strong")
    client.create_index(tickets_of(name), params, sync=False)


def take_tickets(client: Any, name: str, n: int) -> list[int]:
    """``n`` keys no other call of any process ever gets, in increasing order."""
    keys: list[int] = []
    for start in range(0, n, TICKET_ROWS_PER_CALL):
        rows = [{"dummy": _DUMMY} for _ in range(min(TICKET_ROWS_PER_CALL, n - start))]
        keys.extend(int(k) for k in client.insert(tickets_of(name), rows)["ids"])
    return keys
