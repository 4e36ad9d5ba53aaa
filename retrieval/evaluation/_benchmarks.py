"""Benchmarks: load one by name (:func:`load_benchmark`) and score a search on it.

========== ========================================== ===========================================
name       layout under ``root``                      protocol
========== ========================================== ===========================================
oxford5k   ``jpg/``, ``gt_files/``                    55 cropped queries, positives good + ok,
paris6k    (see ``_landmarks``)                       junk removed, query image kept in database
roxford5k  ``gnd_roxford5k.pkl``, ``jpg/``            70 cropped queries outside the database;
rparis6k   ``gnd_rparis6k.pkl``, ``jpg/``             setups easy / medium / hard (``setup=``)
holidays   ``jpg/100000.jpg`` ... (``rotated=``)      group = number // 100, the lowest number is
                                                      the query, excluded from its own results
ukbench    ``full/ukbench00000.jpg`` ...              groups of 4 consecutive images; every image
                                                      queries, its 4 (itself too) are relevant; N-S
folders    ``<class>/<image>`` (any depth)            leave-one-out: every image queries the rest
                                                      of its class, itself excluded; with
                                                      ``queries=`` a second labelled folder queries
                                                      the database, nothing excluded
========== ========================================== ===========================================

Holidays ``rotated``: ``True`` reads ``root/jpg_rotated`` (the images with their orientation
corrected, same file names), a path reads that folder instead; it must exist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from retrieval.errors import ConfigError, DatasetError, UnknownNameError
from retrieval.evaluation._datasets import (
    DEFAULT_SETUP,
    Benchmark,
    BoundingBox,
    Query,
    require_images,
)
from retrieval.evaluation._landmarks import (
    REVISITED_SETUPS,
    load_classic,
    load_revisited,
    revisited_truth,
)
from retrieval.evaluation._metrics import APMethod, EvaluationResult, QueryTruth, evaluate
from retrieval.evaluation._ranking import rank

__all__ = [
    "BENCHMARKS",
    "DEFAULT_SETUP",
    "REVISITED_SETUPS",
    "Benchmark",
    "BoundingBox",
    "Query",
    "evaluate_benchmark",
    "load_benchmark",
    "load_folders",
    "load_holidays",
    "load_ukbench",
    "revisited_truth",
]

PathArg = str | os.PathLike[str]
_UKBENCH_NAME = re.compile(r"ukbench(\d+)", re.IGNORECASE)


def load_holidays(root: Path, rotated: bool | PathArg = False) -> Benchmark:
    """INRIA Holidays: one query per group (its lowest number), excluded from its own results."""
    if rotated is False:
        folder, what = root / "jpg", "image folder jpg/"
    elif rotated is True:
        folder, what = root / "jpg_rotated", "rotation-corrected image folder jpg_rotated/"
    else:
        folder, what = Path(rotated), "rotation-corrected image folder"
    database = require_images("holidays", folder, what)
    groups: dict[int, list[int]] = {}
    for i, path in enumerate(database):
        if not path.stem.isdigit():
            raise DatasetError(f"holidays: {path} is not named like 100000.jpg")
        groups.setdefault(int(path.stem) // 100, []).append(i)
    queries: list[Query] = []
    truths: list[QueryTruth] = []
    for members in groups.values():
        q = min(members, key=lambda i: int(database[i].stem))
        queries.append(Query(database[q].stem, database[q], None, q))
        truths.append(QueryTruth.of(set(members) - {q}, exclude=[q]))
    return Benchmark(
        "holidays", root, tuple(database), tuple(queries), {DEFAULT_SETUP: tuple(truths)}
    )


def load_ukbench(root: Path) -> Benchmark:
    """UKBench: every image queries; the four images of its group, itself included, are relevant."""
    database = require_images("ukbench", root / "full", "image folder full/")
    groups: dict[int, list[int]] = {}
    for i, path in enumerate(database):
        match = _UKBENCH_NAME.fullmatch(path.stem)
        if match is None:
            raise DatasetError(f"ukbench: {path} is not named like ukbench00000.jpg")
        groups.setdefault(int(match.group(1)) // 4, []).append(i)
    incomplete = [g for g, members in groups.items() if len(members) != 4]
    if incomplete:
        raise DatasetError(
            f"ukbench: {len(incomplete)} groups of four are incomplete, e.g. images "
            f"{[4 * g for g in incomplete[:3]]}.. in {root / 'full'}"
        )
    group_of = {i: members for members in groups.values() for i in members}
    queries = tuple(Query(p.stem, p, None, i) for i, p in enumerate(database))
    truths = tuple(QueryTruth.of(group_of[i]) for i in range(len(database)))
    return Benchmark("ukbench", root, tuple(database), queries, {DEFAULT_SETUP: truths}, ns=True)


def _labelled(folder: Path, what: str) -> tuple[list[Path], list[str]]:
    images = require_images("folders", folder, what)
    labels = [p.relative_to(folder).parts[0] for p in images]
    loose = [p for p, label in zip(images, labels, strict=True) if p.parent == folder]
    if loose:
        raise DatasetError(
            f"folders: images outside a class sub-folder of {folder}, e.g. {loose[0]}"
        )
    return images, labels


def load_folders(root: Path, queries: Path | None = None) -> Benchmark:
    """Labelled folders (one sub-folder per class); see the module docstring for the protocol."""
    database, labels = _labelled(root, "labelled database folder")
    by_label: dict[str, set[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, set()).add(i)
    if queries is None:
        qs = tuple(
            Query(p.relative_to(root).as_posix(), p, None, i) for i, p in enumerate(database)
        )
        truths = tuple(
            QueryTruth.of(by_label[label] - {i}, exclude=[i]) for i, label in enumerate(labels)
        )
    else:
        qpaths, qlabels = _labelled(queries, "labelled query folder")
        qs = tuple(Query(p.relative_to(queries).as_posix(), p) for p in qpaths)
        truths = tuple(QueryTruth.of(by_label.get(label, ())) for label in qlabels)
    return Benchmark("folders", root, tuple(database), qs, {DEFAULT_SETUP: truths})


def _setups(value: object) -> Sequence[str]:
    if value is None:
        return REVISITED_SETUPS
    if not isinstance(value, str) or value not in REVISITED_SETUPS:
        raise UnknownNameError("revisited setup", str(value), REVISITED_SETUPS)
    return (value,)


def _rotated(value: object) -> bool | PathArg:
    if isinstance(value, bool | str | os.PathLike):
        return value
    raise ConfigError(f"holidays option rotated must be a bool or a folder, got {value!r}")


_Loader = Callable[[Path, Path | None, Mapping[str, object]], Benchmark]
_REGISTRY: dict[str, tuple[_Loader, frozenset[str]]] = {
    "oxford5k": (lambda root, q, o: load_classic("oxford5k", root), frozenset()),
    "paris6k": (lambda root, q, o: load_classic("paris6k", root), frozenset()),
    "roxford5k": (
        lambda root, q, o: load_revisited("roxford5k", root, _setups(o.get("setup"))),
        frozenset({"setup"}),
    ),
    "rparis6k": (
        lambda root, q, o: load_revisited("rparis6k", root, _setups(o.get("setup"))),
        frozenset({"setup"}),
    ),
    "holidays": (
        lambda root, q, o: load_holidays(root, _rotated(o.get("rotated", False))),
        frozenset({"rotated"}),
    ),
    "ukbench": (lambda root, q, o: load_ukbench(root), frozenset()),
    "folders": (lambda root, q, o: load_folders(root, q), frozenset()),
}
BENCHMARKS: tuple[str, ...] = tuple(_REGISTRY)


def load_benchmark(
    name: str, root: PathArg, *, queries: PathArg | None = None, **opts: object
) -> Benchmark:
    """Load benchmark ``name`` from ``root`` in its standard downloaded layout.

    Options: ``setup`` ("easy" | "medium" | "hard"; default all three) for roxford5k/rparis6k,
    ``rotated`` for holidays; ``queries`` (a labelled folder) only for folders.
    """
    key = name.lower()
    if key not in _REGISTRY:
        raise UnknownNameError("benchmark", name, BENCHMARKS)
    loader, allowed = _REGISTRY[key]
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ConfigError(f"benchmark {key} takes options {sorted(allowed)}, not {unknown}")
    if queries is not None and key != "folders":
        raise ConfigError(f"benchmark {key} has its own queries; queries= is for folders")
    return loader(Path(root), None if queries is None else Path(queries), opts)


def evaluate_benchmark(
    benchmark: Benchmark,
    *,
    scores: npt.ArrayLike | None = None,
    rankings: npt.ArrayLike | Sequence[npt.ArrayLike] | None = None,
    method: APMethod = "trapezoidal",
    kappas: Sequence[int] = (1, 5, 10),
) -> dict[str, EvaluationResult]:
    """Score a search (scores (nq, nb) or rankings) against every setup of ``benchmark``."""
    shape = (len(benchmark.queries), len(benchmark.database))
    if scores is not None:
        s = np.asarray(scores)
        if s.shape != shape:
            raise ConfigError(f"{benchmark.name}: scores must have shape {shape}, got {s.shape}")
        if len(benchmark.truths) > 1 and rankings is None:
            scores, rankings = None, rank(s)  # rank once for all setups
    return {
        setup: evaluate(
            truths,
            scores=scores,
            rankings=rankings,
            method=method,
            kappas=kappas,
            ns=benchmark.ns,
            names=benchmark.query_names,
        )
        for setup, truths in benchmark.truths.items()
    }
