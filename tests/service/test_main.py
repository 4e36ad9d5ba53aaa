"""``python -m service``: a usage line with every flag; flags win over the environment; Ctrl-C
is a clean stop (exit 0, no traceback)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

import service.__main__ as main
from tests.service.conftest import ServerFactory


def test_the_usage_lists_every_flag() -> None:
    parser = main.build_parser()
    flags = {o for action in parser._actions if action.dest != "help"
             for o in action.option_strings}
    usage = parser.format_usage()
    assert {"--index", "--precision", "--weights", "--workers", "--log-level"} <= flags
    assert {f for f in flags if f not in usage} == set()
    assert set(re.findall(r"--[a-z][a-z-]*", parser.format_help())) <= flags | {"--help"}
    first_line = (main.__doc__ or "").splitlines()[0]
    assert re.findall(r"--[a-z][a-z-]*", first_line) == ["--help"]  # no hand-written flag list


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.setenv("CBIR_INDEX_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("CBIR_WORKERS", "3")
    monkeypatch.setenv("CBIR_PORT", "9000")
    settings = main.settings_from(main.parse_args(["--index", str(tmp_path), "--workers", "5"]))
    assert (settings.index_dir, settings.workers, settings.port) == (tmp_path, 5, 9000)


def test_ctrl_c_stops_the_server_cleanly(start_server: ServerFactory) -> None:
    server = start_server()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=60) == 0
    printed = server.log.read_text()
    assert "Traceback" not in printed and "KeyboardInterrupt" not in printed
