"""Flag groups several commands share, and the typed options each one parses into.

``add_*_flags`` adds a group to a command's parser; the matching ``*Options.from_args`` reads it
back from the parsed namespace (called once, by the command's own ``from_args``). Embedding flags
-> :class:`EmbedderConfig` is the CLI's one mapping, shared by build and evaluate. Each pooling's
parameters become flags from its declaration (``--<pooling>-<param>``, plus any declared aliases
such as ``--vlad-k``), so a new pooling gets its flags without an edit here.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.argtypes import from_namespace, positive
from retrieval import ConfigError
from retrieval.features import BACKBONES, EmbedderConfig, check_scales
from retrieval.pooling import POOLINGS, Param, ParamValue, Pooling

__all__ = ["EmbeddingOptions", "RuntimeOptions", "add_embedding_flags", "add_rerank_flags",
           "add_runtime_flags", "add_search_param_flags", "positive", "scales",
           "user_cache_dir"]


def scales(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated scales relative to --max-side, e.g. ``1,0.707,0.5``."""
    try:
        return check_scales([float(s) for s in text.split(",") if s.strip()])
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"scales must be numbers in (0, 2] separated by "
                                         f"commas, got {text!r} ({exc})") from None


def _dest(pooling: str, param: str) -> str:
    return f"pooling__{pooling}__{param}"


def _parser(cls: type[Pooling], param: Param) -> Callable[[str], ParamValue]:
    def parse(text: str) -> ParamValue:
        try:
            return param.parse(text, cls.name)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = param.kind.__name__  # argparse names the type in "invalid <type> value"
    return parse


def _add_pooling_params(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("pooling parameters (each applies to its pooling only)")
    for cls in POOLINGS.values():
        for param in cls.params:
            flags = [f"--{cls.name}-{param.name.replace('_', '-')}"]
            flags += [f"--{alias}" for alias in param.aliases]
            if param.kind is bool:
                group.add_argument(*flags, dest=_dest(cls.name, param.name), default=None,
                                   action=argparse.BooleanOptionalAction, help=param.help)
            else:
                group.add_argument(*flags, dest=_dest(cls.name, param.name), default=None,
                                   type=_parser(cls, param), metavar=param.name.upper(),
                                   help=f"{param.help} (default {param.default})")


def add_embedding_flags(p: argparse.ArgumentParser, *, pooling_default: str,
                        pooling_help: str, one_pooling: bool) -> None:
    """What decides a vector: backbone, weights, image size, pooling(s), whitening, seed."""
    p.add_argument("--backbone", default="vgg16", choices=sorted(BACKBONES),
                   help="the network whose last convolutional maps are pooled (default vgg16)")
    p.add_argument("--weights", default="imagenet",
                   help="imagenet (torchvision cache/download), random (tests only) or a "
                        "state-dict file")
    choices = sorted(POOLINGS) if one_pooling else None
    p.add_argument("--pooling", default=pooling_default, choices=choices, help=pooling_help)
    p.add_argument("--max-side", dest="max_side", type=positive, default=None,
                   help="longer image side fed to the network (default: the backbone's, 1024)")
    p.add_argument("--scales", type=scales, default=(1.0,),
                   help="image scales relative to --max-side, comma-separated (e.g. 1,0.5): the "
                        "network runs at each, the L2-normalised vectors are summed (default 1)")
    p.add_argument("--whiten-dim", dest="whiten_dim", type=positive, default=None,
                   help="with --whiten: keep this many PCA dimensions (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and sampling")
    _add_pooling_params(p)


@dataclass(frozen=True)
class EmbeddingOptions:
    """The embedding flags but ``--pooling`` and ``--whiten`` (their meaning is the command's).

    ``pooling_params`` holds, per pooling, only the parameters given on the command line (the
    rest take the pooling's declared defaults).
    """

    backbone: str = "vgg16"
    weights: str = "imagenet"
    max_side: int | None = None
    scales: tuple[float, ...] = (1.0,)
    whiten_dim: int | None = None
    seed: int = 0
    pooling_params: Mapping[str, Mapping[str, ParamValue]] = field(default_factory=dict)

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> EmbeddingOptions:
        given: dict[str, dict[str, ParamValue]] = {}
        for name, pooling in POOLINGS.items():
            for param in pooling.params:
                value = getattr(ns, _dest(name, param.name), None)
                if value is not None:
                    given.setdefault(name, {})[param.name] = value
        return from_namespace(cls, ns, scales=tuple(ns.scales), pooling_params=given)

    def config(self, pooling: str, *, whiten: bool) -> EmbedderConfig:
        """The :class:`EmbedderConfig` the flags describe, for ``pooling``."""
        return EmbedderConfig(
            backbone=self.backbone, weights=self.weights, max_side=self.max_side,
            pooling=pooling, pooling_params=dict(self.pooling_params.get(pooling, {})),
            whiten=whiten, whiten_dim=self.whiten_dim, seed=self.seed, scales=self.scales,
        )


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Where and how the network runs (build, add, search)."""
    from retrieval.features import PRECISION_CHOICES

    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--weights-file", dest="weights_file", default=None,
                   help="read the network weights from this file instead of where the index "
                        "says (checked against the index's weights identity)")
    p.add_argument("--threads", type=positive, default=None,
                   help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--precision", default=None, choices=PRECISION_CHOICES,
                   help="fp32 (exact), bf16 (autocast; channels_last on cpu), fp16 (cuda), int8 "
                        "(cpu, OpenVINO, calibrated and cached) or auto (the fastest this "
                        "processor runs natively; README \"Performance\"); default: the "
                        "precision the index was built with (a new index: fp32)")
    p.add_argument("--channels-last", dest="channels_last", action="store_true",
                   help="NHWC memory layout for the network (faster with cuda tensor cores)")


@dataclass(frozen=True)
class RuntimeOptions:
    """``--device``, ``--weights-file``, ``--threads``, ``--precision``, ``--channels-last``."""

    device: str = "cpu"
    weights_file: str | None = None
    threads: int | None = None
    precision: str | None = None  # None: the index's (a new index: fp32)
    channels_last: bool = False

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> RuntimeOptions:
        return from_namespace(cls, ns)

    @property
    def engine_cache(self) -> Path:
        """The user cache folder where read-only opens keep int8 engines, not the index:
        ``$XDG_CACHE_HOME/cbir`` (default ``~/.cache/cbir``)."""
        return user_cache_dir()


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/cbir``, or ``~/.cache/cbir`` (the CLI's cache; read at the edge)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cbir"


def add_rerank_flags(p: argparse.ArgumentParser, *, build: bool) -> None:
    """``--qe`` / ``--qe-alpha`` (and, for build, ``--dba`` / ``--dba-alpha`` / ``--graph-k``)."""
    from retrieval.index import MAX_RERANK_K

    def k(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not 0 <= value <= MAX_RERANK_K:
            raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_RERANK_K}, "
                                             f"got {text!r}")
        return value

    def graph_k(text: str) -> int:
        from retrieval.index import MAX_GRAPH_K

        value = int(text) if text.isdigit() else -1
        if not 0 <= value <= MAX_GRAPH_K:
            raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_GRAPH_K}, "
                                             f"got {text!r}")
        return value

    scope = "stored as the index's default" if build else "for this search (default: the index's)"
    p.add_argument("--qe", type=k, default=0 if build else None,
                   help=f"αQE: expand the query with its K nearest (0: off), {scope}")
    p.add_argument("--qe-alpha", dest="qe_alpha", type=float, default=3.0 if build else None,
                   help="αQE weight exponent (default 3)")
    if build:
        p.add_argument("--dba", type=k, default=0,
                       help="DBA: index each vector averaged with its K nearest (0: off)")
        p.add_argument("--dba-alpha", dest="dba_alpha", type=float, default=3.0,
                       help="DBA weight exponent (default 3)")
        p.add_argument("--graph-k", dest="graph_k", type=graph_k, default=0,
                       help="keep each image's K nearest neighbours in the index, updated with "
                            "every add and remove (for diffusion; DBA keeps its own K anyway)")


def add_search_param_flags(p: argparse.ArgumentParser, scope: str) -> None:
    """``--nprobe`` (IVF) and ``--ef-search`` (HNSW)."""
    p.add_argument("--nprobe", type=positive, default=None,
                   help=f"IVF lists probed per query, {scope}")
    p.add_argument("--ef-search", dest="ef_search", type=positive, default=None,
                   help=f"HNSW candidate list size, {scope}")
