"""argparse value types that import nothing heavy (the parser of every command uses them)."""

from __future__ import annotations

import argparse

__all__ = ["cosine", "positive"]


def positive(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def cosine(text: str) -> float:
    """argparse type: a cosine similarity, from -1 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from -1 to 1, got {text!r}") from None
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from -1 to 1, got {text}")
    return value
