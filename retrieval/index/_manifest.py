"""``manifest.json``: all it takes to embed a query exactly as an index's database was embedded.

An index directory is only usable with queries embedded by the same backbone, weights, image size,
pooling and whitening; :meth:`Manifest.check_matches` refuses anything else with a
:class:`~retrieval.errors.ManifestMismatchError` naming each differing field. The file is JSON,
written atomically (:func:`retrieval._atomic.write_atomic`), and versioned by
``format_version``: a reader refuses versions newer than it knows.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args

from retrieval._atomic import write_atomic
from retrieval.errors import ArtifactError, ConfigError, ManifestMismatchError
from retrieval.rerank import Diffusion

__all__ = ["DEFAULT_NPROBE", "EMBEDDING_FIELDS", "FORMAT_VERSION", "INDEX_FIELDS", "MANIFEST_NAME",
           "MAX_GRAPH_K", "METRICS", "SEARCH_PARAM_NAMES", "Manifest", "Metric", "ParamValue",
           "library_versions"]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
Metric = Literal["inner_product", "l2"]
METRICS: frozenset[str] = frozenset(get_args(Metric))
#: Search-time knobs an index may carry (IVF lists probed, HNSW candidate list size).
SEARCH_PARAM_NAMES = frozenset({"nprobe", "ef_search"})
#: IVF lists probed unless told otherwise (every engine). faiss's own default, 1, loses about one
#: true neighbour in eight on 512-D descriptors; 16 keeps recall@10 >= 0.95 in ``make bench``'s
#: scale part.
DEFAULT_NPROBE = 16
#: Most neighbours per image a kept graph may hold (``graph_k``; diffusion uses 20 to 50).
MAX_GRAPH_K = 256
#: The settings a query must share with the database to be embedded identically.
EMBEDDING_FIELDS = ("backbone", "weights", "max_side", "scales", "pooling", "pooling_params",
                    "whiten", "whiten_dim", "dim")
#: What the FAISS vectors are made of beyond the embedding (database-side augmentation).
INDEX_FIELDS = ("metric", "faiss_factory", "dba_k", "dba_alpha")

ParamValue = bool | int | float | str

_DISTRIBUTIONS = {"torch": ("torch",), "torchvision": ("torchvision",),
                  "faiss": ("faiss-cpu", "faiss-gpu", "faiss"), "numpy": ("numpy",),
                  "cbir": ("cbir",)}


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted(mapping.items())))


def library_versions() -> dict[str, str]:
    """Installed versions of python, torch, torchvision, faiss, numpy and cbir (no imports)."""
    versions = {"python": platform.python_version()}
    for name, distributions in _DISTRIBUTIONS.items():
        versions[name] = "not installed"
        for dist in distributions:
            try:
                versions[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return versions


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """How an index's vectors were made, and how the index stores them.

    ``weights`` identifies the network weights (``"imagenet:IMAGENET1K_V1"``,
    ``"sha256:<hex>"``, ``"random:seed=0"``); ``weights_file`` is where they were read from, for
    information only. ``precision`` is the precision the database was embedded in (``fp32``,
    ``bf16``, ``fp16``, ``int8``); queries in another precision are allowed only where the
    measured loss is negligible (``retrieval.features.check_query_precision``).
    ``search_params`` (``nprobe``, ``ef_search``) are applied to the FAISS index
    whenever it is opened; they change speed and recall, not what a vector means, so they are not
    embedding fields. ``scales`` are the image scales (relative to ``max_side``) whose vectors
    are combined; manifests written before multi-scale lack it and mean ``(1.0,)``. ``qe_k`` /
    ``qe_alpha`` are the default αQE of a search (0: none; a query-time knob like
    ``search_params``); ``dba_k`` / ``dba_alpha`` the database-side augmentation of the vectors
    FAISS holds (0: none; the store keeps the raw vectors). ``graph_k`` asks the index to keep
    each image's top-``graph_k`` raw neighbours beside its record (0: only DBA's ``dba_k``, if
    any; older manifests lack it and mean 0). ``diffusion`` is the default
    diffusion re-ranking of a search (every parameter of :class:`~retrieval.rerank.Diffusion`;
    null: none; older manifests lack it), ``preset`` the ``--preset`` the index was built from
    (null: none; information only). ``pooling_params``,
    ``search_params`` and ``versions`` are copied into read-only mappings, so a manifest is
    immutable and hashable (they take no part in the hash, only in equality).
    """

    backbone: str
    weights: str
    max_side: int
    pooling: str
    dim: int
    pooling_params: Mapping[str, ParamValue] = field(default_factory=dict, hash=False)
    whiten: bool = False
    whiten_dim: int | None = None
    weights_file: str | None = None
    metric: Metric = "inner_product"
    faiss_factory: str = "Flat"
    search_params: Mapping[str, int] = field(default_factory=dict, hash=False)
    scales: tuple[float, ...] = (1.0,)
    qe_k: int = 0
    qe_alpha: float = 3.0
    dba_k: int = 0
    dba_alpha: float = 3.0
    graph_k: int = 0
    precision: str = "fp32"  # what the database was embedded in (older manifests: fp32)
    diffusion: Mapping[str, int | float] | None = field(default=None, hash=False)
    preset: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict, hash=False)
    created_at: str = field(default_factory=_utc_now)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "pooling_params", _frozen(self.pooling_params))
        object.__setattr__(self, "versions", _frozen(self.versions))
        object.__setattr__(self, "search_params", _frozen(self.search_params))
        if isinstance(self.diffusion, Mapping):
            object.__setattr__(self, "diffusion", _frozen(Diffusion.from_dict(
                self.diffusion).to_dict()))
        if isinstance(self.scales, list | tuple):
            object.__setattr__(self, "scales", tuple(
                float(s) if _is_number(s) else s for s in self.scales))
        for name in ("qe_alpha", "dba_alpha"):
            if _is_number(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        problems = _type_problems({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        if problems:
            raise ConfigError("invalid manifest: " + "; ".join(problems))
        if self.metric not in METRICS:
            raise ConfigError(f"metric must be one of {sorted(METRICS)}, got {self.metric!r}")
        for name in ("qe_k", "dba_k", "graph_k", "qe_alpha", "dba_alpha"):
            if getattr(self, name) < 0:
                raise ConfigError(f"manifest {name} must not be negative, "
                                  f"got {getattr(self, name)}")
        if self.graph_k > MAX_GRAPH_K:
            raise ConfigError(f"manifest graph_k must be at most {MAX_GRAPH_K}, "
                              f"got {self.graph_k}")
        for name in ("dim", "max_side", "whiten_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"manifest {name} must be positive, got {value}")
        if not 1 <= self.format_version <= FORMAT_VERSION:
            raise ConfigError(f"unsupported manifest format_version {self.format_version}")
        if not self.faiss_factory.strip():
            raise ConfigError("faiss_factory must not be empty")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (mappings become plain dicts)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["pooling_params"] = dict(self.pooling_params)
        out["versions"] = dict(self.versions)
        out["search_params"] = dict(self.search_params)
        out["scales"] = list(self.scales)
        out["diffusion"] = None if self.diffusion is None else dict(self.diffusion)
        return out

    @property
    def diffusion_settings(self) -> Diffusion | None:
        """The default diffusion of a search (None: off)."""
        return None if self.diffusion is None else Diffusion.from_dict(self.diffusion)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Validate and build; :class:`ArtifactError` names every missing or ill-typed field."""
        if not isinstance(data, Mapping):
            raise ArtifactError(f"manifest must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version", FORMAT_VERSION)
        if _is_int(version) and version > FORMAT_VERSION:
            raise ArtifactError(f"manifest format_version {version} is newer than this cbir "
                                f"understands ({FORMAT_VERSION}); upgrade cbir")
        known = {f.name: f for f in dataclasses.fields(cls)}
        required = [n for n, f in known.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        problems = [f"{name}: missing" for name in required if name not in data]
        problems += _type_problems({k: v for k, v in data.items() if k in known})
        if problems:
            raise ArtifactError("invalid manifest: " + "; ".join(problems))
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except ConfigError as exc:
            raise ArtifactError(str(exc)) from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save(self, directory: Path) -> Path:
        """Write ``directory/manifest.json`` atomically; returns its path."""
        path = Path(directory) / MANIFEST_NAME
        write_atomic(path, self.to_json().encode("utf-8"))
        return path

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read ``directory/manifest.json``; :class:`ArtifactError` if missing or corrupt."""
        path = Path(directory) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ArtifactError(f"{directory} is not an index directory: "
                                f"no {MANIFEST_NAME}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{path} is unreadable or not JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ArtifactError as exc:
            raise ArtifactError(f"{path}: {exc}") from exc

    def with_search_defaults(self, defaults: Mapping[str, int]) -> Manifest:
        """This manifest with ``defaults`` under the search parameters it sets itself."""
        wanted = {**defaults, **self.search_params}
        if wanted == dict(self.search_params):
            return self
        return dataclasses.replace(self, search_params=wanted)

    def check_matches(self, other: Manifest, *, fields: tuple[str, ...] = EMBEDDING_FIELDS) -> None:
        """Raise :class:`ManifestMismatchError` listing every field of ``fields`` that differs.

        ``self`` is the index's manifest, ``other`` the settings asked for.
        """
        diffs = [f"{name}: index has {_show(getattr(self, name))}, "
                 f"asked for {_show(getattr(other, name))}"
                 for name in fields if getattr(self, name) != getattr(other, name)]
        if diffs:
            raise ManifestMismatchError("query settings differ from the index's: "
                                        + "; ".join(diffs))


def _show(value: Any) -> str:
    return repr(dict(value)) if isinstance(value, Mapping) else repr(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "backbone": ("a string", lambda v: isinstance(v, str)),
    "weights": ("a string", lambda v: isinstance(v, str)),
    "weights_file": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "max_side": ("an integer", _is_int),
    "pooling": ("a string", lambda v: isinstance(v, str)),
    "pooling_params": ("an object of numbers/strings/booleans",
                       lambda v: isinstance(v, Mapping) and all(
                           isinstance(k, str) and isinstance(x, bool | int | float | str)
                           for k, x in v.items())),
    "whiten": ("a boolean", lambda v: isinstance(v, bool)),
    "whiten_dim": ("an integer or null", lambda v: v is None or _is_int(v)),
    "dim": ("an integer", _is_int),
    "metric": ("a string", lambda v: isinstance(v, str)),
    "faiss_factory": ("a string", lambda v: isinstance(v, str)),
    "search_params": ("an object of positive integers named nprobe or ef_search",
                      lambda v: isinstance(v, Mapping) and all(
                          k in SEARCH_PARAM_NAMES and _is_int(x) and x > 0
                          for k, x in v.items())),
    "scales": ("a non-empty list of positive numbers",
               lambda v: isinstance(v, list | tuple) and len(v) > 0
               and all(_is_number(s) and s > 0 for s in v)),
    "qe_k": ("an integer", _is_int),
    "dba_k": ("an integer", _is_int),
    "graph_k": ("an integer", _is_int),
    "qe_alpha": ("a number", _is_number),
    "dba_alpha": ("a number", _is_number),
    "versions": ("an object of strings", lambda v: isinstance(v, Mapping) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items())),
    "created_at": ("a string", lambda v: isinstance(v, str)),
    "precision": ("a string", lambda v: isinstance(v, str)),
    "diffusion": ("an object of numbers or null", lambda v: v is None or (
        isinstance(v, Mapping) and all(isinstance(k, str) and _is_number(x)
                                       for k, x in v.items()))),
    "preset": ("a string or null", lambda v: v is None or isinstance(v, str)),
    "format_version": ("an integer", _is_int),
}


def _type_problems(values: Mapping[str, Any]) -> list[str]:
    return [f"{name}: must be {what}, got {type(values[name]).__name__}"
            for name, (what, ok) in _CHECKS.items() if name in values and not ok(values[name])]
