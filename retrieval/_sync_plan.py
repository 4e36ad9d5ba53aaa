"""What keeping an index in step with a folder takes: :func:`plan_sync`, a pure comparison.

The stored side is what the index holds under the folder (path -> ``(id, sha256)`` of each
record there); the folder side a scan (path -> ``(size, mtime_ns)``). Stamps remember, per path,
the content (sha256) last seen at a size and mtime, so a file whose size and mtime did not move
is not read again; any other file under a stored path is hashed, and only its sha256 decides:

* a scanned path with no record is **new** (embedded and added);
* a stored path whose file now has another sha256 **changed** (embedded again; its records are
  replaced in the transaction that adds the new one);
* a stored path whose file is gone **vanished**: if a new path holds the same sha256 the file
  **moved** (its record is re-pointed to the new path, nothing embedded), else it is removed;
* everything else is **unchanged**; so is a new file that could not be decoded last time and
  kept its size and mtime since (it is not tried, and reported, on every round).

Only the digest function reads files (it is given, so the plan is testable without any); new
paths are hashed only when some record vanished (to find the moves among them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["FileStamp", "Stored", "SyncPlan", "plan_sync", "within"]

#: path -> the ``(id, sha256)`` of every record stored at it.
Stored = Mapping[str, Sequence[tuple[int, str]]]
Digest = Callable[[str], "str | None"]


@dataclass(frozen=True)
class FileStamp:
    """A file's size and mtime when it was last looked at, and its sha256 then ("": unread);
    ``unreadable``: it could not be decoded then (not tried again until it changes)."""

    size: int
    mtime_ns: int
    sha256: str = ""
    unreadable: bool = False


@dataclass
class SyncPlan:
    """What :func:`plan_sync` found; ``stamps`` are the scanned files' stamps, as far as known."""

    add: list[str] = field(default_factory=list)
    reembed: dict[str, list[int]] = field(default_factory=dict)  # path -> its old ids
    repoint: dict[int, str] = field(default_factory=dict)  # moved: id -> its new path
    remove: list[int] = field(default_factory=list)  # vanished, not moved
    unchanged: int = 0
    stamps: dict[str, FileStamp] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.add or self.reembed or self.repoint or self.remove)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.add), "reembedded": len(self.reembed),
                "moved": len(self.repoint), "removed": len(self.remove),
                "unchanged": self.unchanged}


def within(paths: Iterable[str], roots: Iterable[str]) -> set[str]:
    """The ``paths`` equal to one of ``roots`` or under one (``root/...``)."""
    prefixes = tuple(r.rstrip("/") + "/" for r in roots)
    exact = {r.rstrip("/") for r in roots}
    return {p for p in paths if p in exact or p.startswith(prefixes)}


def _content(path: str, stat: tuple[int, int], stamps: Mapping[str, FileStamp],
             digest: Digest) -> str | None:
    """The file's sha256: its stamp's when size and mtime are those stamped, else read."""
    stamp = stamps.get(path)
    if stamp is not None and stamp.sha256 and (stamp.size, stamp.mtime_ns) == stat:
        return stamp.sha256
    return digest(path)


def plan_sync(stored: Stored, scanned: Mapping[str, tuple[int, int]],
              stamps: Mapping[str, FileStamp], digest: Digest) -> SyncPlan:
    """Compare ``stored`` with ``scanned`` (module docstring). A stored file that cannot be read
    now (``digest`` gives None: being written, or gone since the scan) is left for the next
    round; a new one that cannot is added (the embedder reports why it cannot be read)."""
    plan = SyncPlan()
    new: list[str] = []
    for path in sorted(scanned):
        stat = scanned[path]
        records = stored.get(path)
        stamp = stamps.get(path)
        if not records and stamp is not None and stamp.unreadable and (
                stamp.size, stamp.mtime_ns) == stat:
            plan.stamps[path] = stamp  # could not be decoded, and has not changed since
            continue
        if not records:
            new.append(path)
            plan.stamps[path] = FileStamp(*stat)
            continue
        sha = _content(path, stat, stamps, digest)
        if sha is None:
            continue
        plan.stamps[path] = FileStamp(*stat, sha)
        if all(s == sha for _, s in records):
            plan.unchanged += 1
        else:
            plan.reembed[path] = sorted(i for i, _ in records)
    vanished = sorted(p for p in stored if p not in scanned)
    moved_from: dict[str, list[int]] = {}
    for path in vanished:
        for image_id, sha in sorted(stored[path]):
            moved_from.setdefault(sha, []).append(image_id)
    for path in new:
        sha = _content(path, scanned[path], stamps, digest) if moved_from else None
        if sha is not None:
            plan.stamps[path] = FileStamp(*scanned[path], sha)
        ids = moved_from.get(sha or "")
        if ids:
            plan.repoint[ids.pop(0)] = path
        else:
            plan.add.append(path)
    plan.remove = sorted(i for p in vanished for i, _ in stored[p] if i not in plan.repoint)
    return plan
