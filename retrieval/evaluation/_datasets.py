"""What a benchmark loader returns (:class:`Query`, :class:`Benchmark`) and how it finds files.

Loaders live in :mod:`._benchmarks` (registry, Holidays, UKBench, labelled folders) and
:mod:`._landmarks` (Oxford5k/Paris6k and their revisited versions). Database images are paths;
the ground truth (:class:`~retrieval.evaluation.QueryTruth`) refers to them by index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from retrieval.errors import ConfigError, DatasetError
from retrieval.evaluation._metrics import QueryTruth
from retrieval.images import list_images

__all__ = [
    "DEFAULT_SETUP",
    "PUBLISHED_AT",
    "Benchmark",
    "BoundingBox",
    "Query",
    "index_by_stem",
    "missing",
    "require_dir",
    "require_file",
    "require_images",
]

BoundingBox = tuple[float, float, float, float]
"""x1, y1, x2, y2 in pixels of the full-size image (corners, not x, y, w, h)."""

DEFAULT_SETUP = "default"
"""The setup key of benchmarks that have one ground truth (all but ROxford/RParis)."""

PUBLISHED_AT: Mapping[str, str] = {
    "oxford5k": "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/",
    "paris6k": "https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/",
    "roxford5k": "http://cmp.felk.cvut.cz/revisitop/",
    "rparis6k": "http://cmp.felk.cvut.cz/revisitop/",
    "holidays": "https://lear.inrialpes.fr/~jegou/data.php",
    "ukbench": "https://archive.org/details/ukbench",
}


@dataclass(frozen=True)
class Query:
    """One query image; crop it to ``box`` (when given) before embedding it."""

    name: str
    path: Path
    box: BoundingBox | None = None
    database_index: int | None = None  # where the same file sits in the database, if it does


@dataclass(frozen=True)
class Benchmark:
    """Database, queries and, per evaluation setup, one :class:`QueryTruth` per query.

    ``truths`` maps a setup name to the truths in query order: ``"easy"``, ``"medium"``,
    ``"hard"`` for ROxford/RParis, :data:`DEFAULT_SETUP` for the others. ``ns`` says that the
    benchmark reports UKBench's N-S score.
    """

    name: str
    root: Path
    database: tuple[Path, ...]
    queries: tuple[Query, ...]
    truths: Mapping[str, tuple[QueryTruth, ...]]
    ns: bool = False

    def __post_init__(self) -> None:
        for setup, truths in self.truths.items():
            if len(truths) != len(self.queries):
                raise DatasetError(
                    f"{self.name}: {len(truths)} {setup} truths for {len(self.queries)} queries"
                )

    @property
    def setups(self) -> tuple[str, ...]:
        return tuple(self.truths)

    @property
    def query_names(self) -> tuple[str, ...]:
        return tuple(q.name for q in self.queries)

    def truth(self, setup: str | None = None) -> tuple[QueryTruth, ...]:
        """The truths of ``setup``; may be omitted when the benchmark has only one."""
        if setup is None:
            if len(self.truths) != 1:
                raise ConfigError(f"{self.name} has setups {self.setups}; name one")
            return next(iter(self.truths.values()))
        if setup not in self.truths:
            raise ConfigError(f"{self.name} has no setup {setup!r}; it has {self.setups}")
        return self.truths[setup]


def missing(benchmark: str, what: str, where: Path) -> DatasetError:
    """The error for a file or folder the standard layout of ``benchmark`` should have."""
    url = PUBLISHED_AT.get(benchmark)
    hint = f"; download the benchmark from {url}" if url else ""
    return DatasetError(f"{benchmark}: {what} not found at {where}{hint}")


def require_dir(benchmark: str, path: Path, what: str) -> Path:
    if not path.is_dir():
        raise missing(benchmark, what, path)
    return path


def require_file(benchmark: str, path: Path, what: str) -> Path:
    if not path.is_file():
        raise missing(benchmark, what, path)
    return path


def require_images(benchmark: str, folder: Path, what: str) -> list[Path]:
    """The images under ``folder`` (recursive, sorted); a missing or empty folder is an error."""
    images = list_images(require_dir(benchmark, folder, what))
    if not images:
        raise missing(benchmark, f"images in {what}", folder)
    return images


def index_by_stem(benchmark: str, paths: Sequence[Path]) -> dict[str, int]:
    """File stem -> index in ``paths``, which must not repeat a stem."""
    index: dict[str, int] = {}
    for i, path in enumerate(paths):
        if path.stem in index:
            raise DatasetError(
                f"{benchmark}: two images named {path.stem!r}: {paths[index[path.stem]]} and {path}"
            )
        index[path.stem] = i
    return index
