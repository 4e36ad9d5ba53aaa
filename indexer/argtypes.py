"""argparse value types and helpers that import nothing heavy (every command's parser uses them)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Subparsers", "cosine", "from_namespace", "positive"]

D = TypeVar("D", bound="DataclassInstance")

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What each command module's ``add_parser`` adds its parser to."""


def _integer(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be a {what} integer, got {text}")
    return value


def positive(text: str) -> int:
    """argparse type: a positive integer."""
    return _integer(text, 1, "positive")


def non_negative(text: str) -> int:
    """argparse type: a non-negative integer."""
    return _integer(text, 0, "non-negative")


def cosine(text: str) -> float:
    """argparse type: a cosine similarity, from -1 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from -1 to 1, got {text!r}") from None
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from -1 to 1, got {text}")
    return value


def from_namespace(cls: type[D], ns: argparse.Namespace, **given: Any) -> D:
    """The dataclass ``cls`` with each field not in ``given`` read from ``ns`` by its name.

    The one reading of a command's namespace: each command's ``Options.from_args`` calls it,
    ``given`` holding the fields it converts (paths, nested option groups).
    """
    read = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if f.name not in given}
    return cls(**read, **given)
