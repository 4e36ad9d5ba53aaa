"""cbir's library: images -> vectors -> a durable index, and the measuring of it.

The front door. Edges (the CLI, the service, the benchmarks) import from here or from a
subpackage's ``__init__`` (:mod:`retrieval.features`, :mod:`retrieval.pooling`,
:mod:`retrieval.index`, :mod:`retrieval.evaluation`, :mod:`retrieval.rerank`), never from a
private module.

Every exported name is spelled once, in ``__init__.pyi`` beside this file (the convention of
scientific Python's SPEC 1 lazy loading): type checkers read the stub, and this module reads the
stub's ``from <module> import <name> as <name>`` lines to load each name lazily on first use
(PEP 562), so ``import retrieval`` or ``from retrieval import ConfigError`` costs nothing: torch and
faiss are imported by the first name that needs them.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any


def _lazy_table() -> dict[str, str]:
    """Exported name -> the module it is loaded from, as ``__init__.pyi`` declares them."""
    tree = ast.parse(Path(__file__).with_suffix(".pyi").read_text(encoding="utf-8"))
    return {alias.asname or alias.name: node.module
            for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names}


_WHERE = _lazy_table()
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
