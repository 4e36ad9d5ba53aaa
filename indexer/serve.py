"""``cbir serve``: hand over to the service package in a fresh interpreter.

The two never import each other: the flags are passed on to ``python -m service``, which checks
them (``--precision`` against the precisions the embedder accepts) and reads the rest of its
settings from ``CBIR_*`` environment variables.

What is served is an index directory (``--index``, or ``CBIR_INDEX_DIR``) or, for a stateless
replica, a Milvus collection (``--milvus-uri`` + ``--collection``, or ``CBIR_STORE_URI`` +
``CBIR_COLLECTION``): its manifest and fitted state are copied into ``--index`` (default
``<tmp>/cbir-<collection>``). Neither, or half of the pair, is a usage error (exit 2) before the
service starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from indexer.argtypes import Subparsers, from_namespace
from retrieval import ConfigError

__all__ = ["ServeOptions", "add_parser", "run_serve"]


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("serve", help=help_text)
    p.add_argument("--index", default=None,
                   help="the index directory to serve (CBIR_INDEX_DIR); with --milvus-uri: "
                        "where the replica copies the collection's manifest (default "
                        "<tmp>/cbir-<collection>)")
    p.add_argument("--milvus-uri", dest="milvus_uri", default=None, metavar="URI",
                   help="serve a Milvus collection as a stateless replica: http://host:19530 "
                        "(CBIR_STORE_URI; with --collection)")
    p.add_argument("--collection", default=None,
                   help="with --milvus-uri: the collection name (CBIR_COLLECTION)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (CBIR_DEVICE, default cpu)")
    p.add_argument("--precision", default=None,
                   help="fp32|bf16|fp16|int8|auto (CBIR_PRECISION, default: the precision the "
                        "index was built with)")
    p.set_defaults(options=ServeOptions.from_args, run=run_serve)


@dataclass(frozen=True)
class ServeOptions:
    """``cbir serve``'s flags, typed (``None``: the service's own default)."""

    index: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    device: str | None = None
    precision: str | None = None
    milvus_uri: str | None = None
    collection: str | None = None
    log_level: str | None = None  # ``cbir -q serve``: warning, ``-v``: debug (default info)

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> ServeOptions:
        level = ("debug" if getattr(ns, "verbose", False)
                 else "warning" if getattr(ns, "quiet", False) else None)
        return from_namespace(cls, ns, log_level=level)

    def check_source(self, environ: Mapping[str, str]) -> None:
        """Raise :class:`ConfigError` unless the flags or ``environ`` name what to serve."""
        uri = self.milvus_uri or environ.get("CBIR_STORE_URI")
        collection = self.collection or environ.get("CBIR_COLLECTION")
        if bool(uri) != bool(collection):
            raise ConfigError("--milvus-uri and --collection go together (or CBIR_STORE_URI and "
                              "CBIR_COLLECTION)")
        if not (uri or self.index or environ.get("CBIR_INDEX_DIR")):
            raise ConfigError("nothing to serve: pass --index DIR, or --milvus-uri URI "
                              "--collection NAME for a replica of a Milvus collection")

    def service_argv(self) -> list[str]:
        """The ``python -m service`` command line these options stand for."""
        argv = [sys.executable, "-m", "service", "--host", self.host, "--port", str(self.port)]
        for flag, value in (("--index", self.index), ("--milvus-uri", self.milvus_uri),
                            ("--collection", self.collection), ("--device", self.device),
                            ("--precision", self.precision), ("--log-level", self.log_level)):
            if value:
                argv += [flag, value]
        return argv


def run_serve(opts: ServeOptions) -> int:
    """Replace this process with the service (returns only if ``execv`` fails, by raising)."""
    opts.check_source(os.environ)
    sys.stdout.flush()
    os.execv(sys.executable, opts.service_argv())
