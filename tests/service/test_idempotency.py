"""Adds are safe to retry: stored content answers with its record, a request key replays."""

from __future__ import annotations

import httpx

from tests.service.conftest import AUTH, jpeg


def add(client: httpx.Client, *images: bytes, key: str | None = None) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    files = [("images", (f"f{i}.jpg", data)) for i, data in enumerate(images)]
    return client.post("/images", files=files, headers=headers)


def test_a_duplicate_upload_returns_the_existing_record(client: httpx.Client) -> None:
    first = add(client, jpeg(300))
    assert first.status_code == 201, first.text
    count = client.get("/stats").json()["count"]
    again = add(client, jpeg(300))
    assert again.status_code == 200, again.text
    (record,) = again.json()["added"]
    assert record == {**first.json()["added"][0], "duplicate": True}
    mixed = add(client, jpeg(300), jpeg(301))
    assert mixed.status_code == 201
    old, new = mixed.json()["added"]
    assert (old["id"], old["duplicate"], new["duplicate"]) == (record["id"], True, False)
    assert client.get("/stats").json()["count"] == count + 1


def test_an_idempotency_key_replays_the_first_answer(client: httpx.Client) -> None:
    count = client.get("/stats").json()["count"]
    first = add(client, jpeg(310), jpeg(311), key="retry-310")
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    retried = add(client, jpeg(310), jpeg(311), key="retry-310")
    assert retried.status_code == 201, retried.text  # the first answer, status included
    assert retried.headers["idempotent-replayed"] == "true"
    assert retried.json() == first.json()
    assert client.get("/stats").json()["count"] == count + 2
    other = add(client, jpeg(312), key="retry-310")
    assert (other.status_code, other.json()["error"]) == (422, "invalid_request")
    assert "Idempotency-Key" in other.json()["detail"]
    bad = add(client, jpeg(312), key="has space")
    assert (bad.status_code, bad.json()["error"]) == (422, "validation_error")
    assert client.get("/stats").json()["count"] == count + 2
