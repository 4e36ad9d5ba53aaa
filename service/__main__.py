"""``python -m service``: serve one index over HTTP with uvicorn (``--help`` lists the flags).

Settings come from ``CBIR_*`` environment variables; flags override them. Exit codes: 0 after a
clean shutdown, 1 when the index cannot be opened, 2 for invalid settings.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError

from service.app import create_app
from service.errors import RETRY_AFTER_S
from service.http.connections import guarded_protocol
from service.settings import Settings

__all__ = ["main", "uvicorn_config"]

log = logging.getLogger("service")


class _StopOnFatal:
    """Stops the server when the index cannot be opened (the exit code then says 1)."""

    def __init__(self) -> None:
        self.server: uvicorn.Server | None = None
        self.error: BaseException | None = None

    def __call__(self, exc: BaseException) -> None:
        self.error = exc
        if self.server is not None:
            self.server.should_exit = True


DESCRIPTION = "Serve one index over HTTP with uvicorn."
EPILOG = ("Settings come from CBIR_* environment variables (service/settings.py lists them "
          "all); these flags override them. Exit codes: 0 after a clean shutdown, 1 when the index "
          "cannot be opened, 2 for invalid settings.")


def build_parser() -> argparse.ArgumentParser:
    """The flags; argparse writes the usage line from them, so it lists every one."""
    p = argparse.ArgumentParser(prog="python -m service", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--index", dest="index_dir", metavar="DIR",
                   help="index directory (CBIR_INDEX_DIR)")
    p.add_argument("--milvus-uri", dest="store_uri", metavar="URI",
                   help="a replica of a Milvus collection: its server (CBIR_STORE_URI)")
    p.add_argument("--collection", help="with --milvus-uri: the collection (CBIR_COLLECTION)")
    p.add_argument("--host", help="address to bind (CBIR_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (CBIR_PORT, default 8000)")
    p.add_argument("--device", help="torch device (CBIR_DEVICE, default cpu)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16", "int8", "auto"],
                   help="network precision (CBIR_PRECISION, default: the index's)")
    p.add_argument("--weights", help="weights file (CBIR_WEIGHTS)")
    p.add_argument("--workers", type=int, help="inference threads (CBIR_WORKERS)")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"], help="default info")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the flags that were given."""
    names = ("index_dir", "store_uri", "collection", "host", "port", "device", "precision",
             "weights", "workers")
    overrides: dict[str, Any] = {n: getattr(args, n) for n in names
                                 if getattr(args, n) is not None}
    return Settings(**overrides)


def _one_line(exc: ValidationError) -> str:
    """pydantic's errors as one line: ``setting: message; …``."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
                     for e in exc.errors())


def uvicorn_config(app: Any, settings: Settings, log_level: str) -> uvicorn.Config:
    """uvicorn's settings: the guarded protocol holds the deadlines and the connection cap
    (``limit_concurrency`` stays unset: uvicorn's own cap answers in plain text)."""
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level,
        server_header=False, timeout_graceful_shutdown=10,
        http=guarded_protocol(settings.header_timeout_s, settings.body_timeout_s,
                              body_deadline=settings.body_deadline_s,
                              max_connections=settings.max_connections,
                              retry_after_s=RETRY_AFTER_S),
        timeout_keep_alive=settings.keep_alive_s)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("PIL").setLevel(logging.WARNING)
    try:
        settings = settings_from(args)
    except ValidationError as exc:
        print(f"cbir serve: invalid settings: {_one_line(exc)}", file=sys.stderr)
        return 2
    stopper = _StopOnFatal()
    app = create_app(settings, on_fatal=stopper)
    stopper.server = uvicorn.Server(uvicorn_config(app, settings, args.log_level))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once shut down
        stopper.server.run()
    return 1 if stopper.error is not None else 0


if __name__ == "__main__":
    sys.exit(main())
