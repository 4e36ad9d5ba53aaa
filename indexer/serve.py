"""``cbir serve``: hand over to the service package in a fresh interpreter.

The two never import each other: the flags are passed on to ``python -m service``, which checks
them (``--precision`` against the precisions the embedder accepts) and reads the rest of its
settings from ``CBIR_*`` environment variables.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from indexer.argtypes import Subparsers, from_namespace

__all__ = ["ServeOptions", "add_parser", "run_serve"]


def add_parser(sub: Subparsers, help_text: str) -> None:
    p = sub.add_parser("serve", help=help_text)
    p.add_argument("--index", required=True, help="the index directory to serve")
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

    index: str
    host: str = "127.0.0.1"
    port: int = 8000
    device: str | None = None
    precision: str | None = None

    @classmethod
    def from_args(cls, ns: argparse.Namespace) -> ServeOptions:
        return from_namespace(cls, ns)

    def service_argv(self) -> list[str]:
        """The ``python -m service`` command line these options stand for."""
        argv = [sys.executable, "-m", "service", "--index", self.index, "--host", self.host,
                "--port", str(self.port)]
        if self.device:
            argv += ["--device", self.device]
        if self.precision:
            argv += ["--precision", self.precision]
        return argv


def run_serve(opts: ServeOptions) -> int:
    """Replace this process with the service (returns only if ``execv`` fails, by raising)."""
    sys.stdout.flush()
    os.execv(sys.executable, opts.service_argv())
