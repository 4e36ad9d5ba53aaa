"""One real Milvus server (the ``milvus`` package's embedded standalone): the test session's
and the one ``python -m indexer.cluster`` starts.

``milvus-server --data DIR`` unpacks its binaries into DIR on first start and serves Milvus on
``--proxy-port``; ``http://127.0.0.1:9091/healthz`` says when it is ready. Its embedded etcd
always binds 127.0.0.1:2379/2380, so one server runs per machine: a start refuses when those
ports already answer. A stop is a SIGINT to the wrapper (a SIGTERM to the binary waits up to
1800 s), then a kill of the process group if it does not end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["MilvusServer", "MilvusServerError"]

HEALTH = "http://127.0.0.1:9091/healthz"
START_TIMEOUT_S = 180.0    # see MilvusServer.start
STOP_TIMEOUT_S = 30.0
TIME_TICK_MS = 20           # Strong reads wait for the time tick (200 ms by default)
#: ``milvus-server``, except that its check of free ports binds with SO_REUSEADDR as the server
#: itself does: a stopped server leaves its ports in TIME_WAIT for a minute, which the wrapper's
#: plain bind takes for "busy" (it then silently serves on the next ports, health on 9092).
_LAUNCH = """
import socket, sys, milvus

def try_bind_port(self, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None

milvus.MilvusServerConfig.try_bind_port = try_bind_port
sys.argv[0] = "milvus-server"
sys.exit(milvus.main())
"""


class MilvusServerError(RuntimeError):
    """The server did not start; the message ends with its log's tail."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _healthy() -> bool:
    try:
        with urllib.request.urlopen(HEALTH, timeout=2) as response:
            return bool(response.status == 200 and response.read().strip() == b"OK")
    except (urllib.error.URLError, OSError):
        return False


class MilvusServer:
    """``milvus-server`` with its data (and log) under ``root``; :meth:`start`, :meth:`stop`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.log = root / "server.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s = 0.0

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, lines: int = 20) -> str:
        """The last lines of the wrapper's output and of the server's own log."""
        parts = []
        for log in (self.log, self.root / "data" / "logs" / "standalone-1.log"):
            if log.exists():
                kept = [line[:400] for line in log.read_text(errors="replace").splitlines()
                        if "GC Tune done" not in line]
                parts.append(f"--- {log}:\n" + "\n".join(kept[-lines:]))
        return "\n".join(parts) or "(no log)"

    def start(self, timeout_s: float = START_TIMEOUT_S, *, check_ports: bool = True,
              port: int = 0) -> MilvusServer:
        """Start (on ``port``, default a free one) and wait until healthy;
        :class:`MilvusServerError` with the log tail if not.

        A lone start was healthy in 7-14 s here (unpacking included); one within a minute or
        two of another server's stop took 60-105 s (back-to-back manual starts: 7 s, then
        104 s; the server's log is silent after its proxy registers), hence the bound."""
        busy = [p for p in (2379, 2380, 9091) if _answers(p)] if check_ports else []
        if busy:
            raise MilvusServerError(f"ports {busy} already answer on 127.0.0.1: another Milvus "
                                    "(or etcd) runs on this machine; its embedded etcd needs them")
        began = time.monotonic()
        if not self._start_once(timeout_s, port=port):
            failure = f"milvus-server not healthy after {timeout_s:g} s:\n{self.tail()}"
            self.stop()
            raise MilvusServerError(failure)
        self.start_s = time.monotonic() - began
        return self

    def restart(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Stop, then start on the same port and data; the seconds until healthy again."""
        port = self.port
        self.stop()
        began = time.monotonic()
        if not self._start_once(timeout_s, port=port):
            failure = f"milvus-server not healthy after {timeout_s:g} s:\n{self.tail()}"
            self.stop()
            raise MilvusServerError(failure)
        return time.monotonic() - began

    def _start_once(self, timeout_s: float, port: int = 0) -> bool:
        """Start (on ``port``, default a free one); True once healthy, False after
        ``timeout_s``; an exit raises."""
        self.port = port or _free_port()
        began = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCH, "--data", str(self.root / "data"),
                 "--extra-config", f"proxy.timeTickInterval={TIME_TICK_MS}",
                 "--proxy-port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        while not (_healthy() and _answers(self.port)):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise MilvusServerError(f"milvus-server exited with {code}:\n{self.tail()}")
            if time.monotonic() - began > timeout_s:
                return False
            time.sleep(0.25)
        return True

    def stop(self) -> None:
        """SIGINT to the wrapper, then (after :data:`STOP_TIMEOUT_S`) a kill of its group."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_S)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the binary, should the wrapper have left it
        proc.wait()
        self.proc = None
