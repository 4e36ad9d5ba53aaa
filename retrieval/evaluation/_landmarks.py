"""Loaders of the landmark benchmarks: Oxford5k, Paris6k and revisited ROxford5k, RParis6k.

Oxford5k / Paris6k (Philbin et al. 2007, 2008), layout ``root/jpg/`` (flat, or Paris's
per-landmark sub-folders; images are looked up by file stem) and ``root/gt_files/`` with, per query
``Q``, ``Q_query.txt`` (one line ``[oxc1_]image x1 y1 x2 y2``; Oxford prefixes the image with
``oxc1_``, which is stripped; the box is two corners, not x, y, w, h) and ``Q_good.txt``,
``Q_ok.txt``, ``Q_junk.txt``. Positives are good + ok, junk is junk. The database is every image in
``jpg/``, so it holds each query's full image; as in ``compute_ap.cpp`` nothing is excluded: the
query image is scored like any other database image (the official lists put it among its own
positives). Names the lists mention that ``jpg/`` lacks are an error (Paris6k ships 20 unreadable
images: keep the files, the lists refer to them).

ROxford5k / RParis6k (Radenović et al., CVPR 2018), layout ``root/gnd_<name>.pkl`` (or
``root/<name>/gnd_<name>.pkl``) and ``jpg/<image>.jpg`` beside it. The pickle is revisitop's dict:
``imlist`` (database), ``qimlist`` (queries, not in the database) and ``gnd``, one dict per query
with ``bbx`` (x1, y1, x2, y2), ``easy``, ``hard``, ``junk`` (0-based database indices). The three
setups are composed as revisitop's ``example_evaluate.py`` does (:func:`revisited_truth`).
Pickles can run code when loaded: only load ``gnd`` files from the official site.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.errors import DatasetError, UnknownNameError
from retrieval.evaluation._datasets import (
    DEFAULT_SETUP,
    Benchmark,
    BoundingBox,
    Query,
    index_by_stem,
    missing,
    require_dir,
    require_file,
    require_images,
)
from retrieval.evaluation._metrics import QueryTruth

__all__ = ["REVISITED_SETUPS", "load_classic", "load_revisited", "revisited_truth"]

REVISITED_SETUPS: tuple[str, ...] = ("easy", "medium", "hard")
_OXFORD_PREFIX = "oxc1_"


def revisited_truth(
    easy: Iterable[int], hard: Iterable[int], junk: Iterable[int], setup: str
) -> QueryTruth:
    """Easy: easy vs junk + hard; Medium: easy + hard vs junk; Hard: hard vs junk + easy."""
    easy, hard, junk = list(easy), list(hard), list(junk)
    if setup == "easy":
        return QueryTruth.of(easy, junk=junk + hard)
    if setup == "medium":
        return QueryTruth.of(easy + hard, junk=junk)
    if setup == "hard":
        return QueryTruth.of(hard, junk=junk + easy)
    raise UnknownNameError("revisited setup", setup, REVISITED_SETUPS)


# --- Oxford5k / Paris6k -------------------------------------------------------------------------


def _read_names(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").split()
    return [line.removeprefix(_OXFORD_PREFIX) for line in lines]


def _parse_query(benchmark: str, path: Path) -> tuple[str, BoundingBox]:
    fields = path.read_text(encoding="utf-8").split()
    try:
        if len(fields) != 5:
            raise ValueError(f"{len(fields)} fields")
        x1, y1, x2, y2 = (float(f) for f in fields[1:])
    except ValueError as exc:
        raise DatasetError(
            f"{benchmark}: {path} should hold one line 'image x1 y1 x2 y2', got {fields!r}"
        ) from exc
    return fields[0].removeprefix(_OXFORD_PREFIX), (x1, y1, x2, y2)


def _indices(
    benchmark: str, names: Sequence[str], by_stem: Mapping[str, int], src: Path
) -> set[int]:
    unknown = [n for n in names if n not in by_stem]
    if unknown:
        raise DatasetError(
            f"{benchmark}: {src} names {len(unknown)} images not in the database: {unknown[:5]}"
        )
    return {by_stem[n] for n in names}


def _classic_truth(benchmark: str, gt: Path, query: str, by_stem: Mapping[str, int]) -> QueryTruth:
    sets: dict[str, set[int]] = {}
    for kind in ("good", "ok", "junk"):
        path = require_file(benchmark, gt / f"{query}_{kind}.txt", f"{kind} list of {query}")
        sets[kind] = _indices(benchmark, _read_names(path), by_stem, path)
    # compute_ap.cpp tests junk first, so an image listed as both good/ok and junk is junk
    return QueryTruth.of((sets["good"] | sets["ok"]) - sets["junk"], junk=sets["junk"])


def load_classic(benchmark: str, root: Path) -> Benchmark:
    """Oxford5k or Paris6k in the layout of the official tarballs (see the module docstring)."""
    database = require_images(benchmark, root / "jpg", "image folder jpg/")
    by_stem = index_by_stem(benchmark, database)
    gt = require_dir(benchmark, root / "gt_files", "ground-truth folder gt_files/")
    query_files = sorted(gt.glob("*_query.txt"))
    if not query_files:
        raise missing(benchmark, "query files *_query.txt", gt)
    queries: list[Query] = []
    truths: list[QueryTruth] = []
    for path in query_files:
        name = path.name.removesuffix("_query.txt")
        image, box = _parse_query(benchmark, path)
        (index,) = _indices(benchmark, [image], by_stem, path)
        queries.append(Query(name, database[index], box, index))
        truths.append(_classic_truth(benchmark, gt, name, by_stem))
    return Benchmark(
        benchmark, root, tuple(database), tuple(queries), {DEFAULT_SETUP: tuple(truths)}
    )


# --- ROxford5k / RParis6k -----------------------------------------------------------------------


def _find_gnd(benchmark: str, root: Path) -> Path:
    filename = f"gnd_{benchmark}.pkl"
    for candidate in (root / filename, root / benchmark / filename):
        if candidate.is_file():
            return candidate
    raise missing(benchmark, f"ground truth {filename}", root)


def _read_gnd(benchmark: str, path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise DatasetError(f"{benchmark}: cannot read {path}: {exc}") from exc
    keys = ("imlist", "qimlist", "gnd")
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise DatasetError(f"{benchmark}: {path} is not a dict with keys {keys}")
    if len(data["gnd"]) != len(data["qimlist"]):
        raise DatasetError(
            f"{benchmark}: {path} has {len(data['gnd'])} gnd for {len(data['qimlist'])} queries"
        )
    return data


def _ids(benchmark: str, entry: Mapping[str, Any], key: str, n: int) -> list[int]:
    try:
        ids = np.asarray(entry[key], dtype=np.int64).ravel()
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{benchmark}: a gnd entry lacks integer ids {key!r}") from exc
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise DatasetError(f"{benchmark}: gnd {key!r} ids outside the {n} database images")
    return [int(i) for i in ids]


def _box(benchmark: str, entry: Mapping[str, Any]) -> BoundingBox:
    try:
        x1, y1, x2, y2 = (float(v) for v in np.asarray(entry["bbx"], dtype=np.float64).ravel())
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{benchmark}: a gnd entry lacks a box 'bbx' x1 y1 x2 y2") from exc
    return (x1, y1, x2, y2)


def _existing(benchmark: str, images: Path, names: Sequence[str]) -> tuple[Path, ...]:
    paths = tuple(images / f"{name}.jpg" for name in names)
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise missing(benchmark, f"{len(absent)} images, e.g. {absent[:5]},", images)
    return paths


def load_revisited(
    benchmark: str, root: Path, setups: Sequence[str] = REVISITED_SETUPS
) -> Benchmark:
    """ROxford5k or RParis6k with the truths of each setup in ``setups`` (easy/medium/hard)."""
    for setup in setups:
        if setup not in REVISITED_SETUPS:
            raise UnknownNameError("revisited setup", setup, REVISITED_SETUPS)
    gnd_path = _find_gnd(benchmark, root)
    data = _read_gnd(benchmark, gnd_path)
    images = require_dir(benchmark, gnd_path.parent / "jpg", "image folder jpg/")
    imlist = [str(n) for n in data["imlist"]]
    database = _existing(benchmark, images, imlist)
    qpaths = _existing(benchmark, images, [str(n) for n in data["qimlist"]])
    in_db = {name: i for i, name in enumerate(imlist)}
    queries, parts = [], []
    for path, entry in zip(qpaths, data["gnd"], strict=True):
        queries.append(Query(path.stem, path, _box(benchmark, entry), in_db.get(path.stem)))
        parts.append([_ids(benchmark, entry, k, len(imlist)) for k in ("easy", "hard", "junk")])
    truths = {s: tuple(revisited_truth(e, h, j, s) for e, h, j in parts) for s in setups}
    return Benchmark(benchmark, gnd_path.parent, database, tuple(queries), truths)
