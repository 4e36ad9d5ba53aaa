"""Progress output: a bar on a terminal, plain lines on one that reports no width (a real pty)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
from typing import TextIO

import pytest

from indexer.progress import progress_bar


def _pty_with_columns(columns: int) -> tuple[int, TextIO]:
    """A real pseudo-terminal whose window reports ``columns``: (reader fd, writable stream)."""
    reader, writer = pty.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return reader, open(writer, "w", encoding="utf-8")


def _drain(reader: int) -> str:
    chunks = []
    while select.select([reader], [], [], 0.2)[0]:
        chunks.append(os.read(reader, 65536))
    return b"".join(chunks).decode()


@pytest.mark.parametrize("columns", [0, 10])
def test_a_terminal_without_width_gets_plain_progress_lines(columns: int) -> None:
    reader, stream = _pty_with_columns(columns)
    try:
        with progress_bar(3, stream=stream) as bar:
            for _ in range(3):
                bar.update(1)
        stream.flush()
        text = _drain(reader)
    finally:
        stream.close()
        os.close(reader)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("3/3 images (100%), ")
    assert "\r" not in text.replace("\r\n", "")  # no bar redrawn in place


def test_a_wide_terminal_still_gets_the_bar() -> None:
    reader, stream = _pty_with_columns(100)
    try:
        with progress_bar(3, stream=stream) as bar:
            bar.update(3)
        stream.flush()
        text = _drain(reader)
    finally:
        stream.close()
        os.close(reader)
    assert "3/3" in text and "|" in text and "\r" in text
