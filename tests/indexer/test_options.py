"""The namespace stops at the dispatch: every command runs on a frozen dataclass of typed options.

Each command's parser names ``options`` (its ``Options.from_args``) and ``run``; ``run`` is
annotated with that dataclass and nothing else, the dataclass holds no namespace, and no function
in ``indexer/`` but a ``from_args`` takes an ``argparse.Namespace`` (``argparse`` itself is imported
only by the modules that build parsers).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import typing
from pathlib import Path
from typing import Any

import pytest

from indexer.cli import COMMANDS, INDEX_COMMANDS, build_parser
from tests.conftest import REPO

ARGV = {
    "index build": ["--images", "imgs", "--index", "idx"],
    "index add": ["--index", "idx", "a.jpg", "more"],
    "index remove": ["--index", "idx", "3", "5"],
    "index info": ["--index", "idx"],
    "index sync": ["--images", "imgs", "--index", "idx"],
    "index watch": ["--images", "imgs", "--index", "idx"],
    "index migrate": ["--index", "idx", "--to", "new"],
    "index export": ["--index", "idx", "--out", "x.parquet"],
    "index tag": ["--index", "idx", "3", "--add", "sea"],
    "search": ["--index", "idx", "q.jpg"],
    "duplicates": ["--index", "idx"],
    "serve": ["--index", "idx"],
    "demo": [],
    "evaluate": ["--dataset", "folders", "--root", "data"],
}
INDEXER = REPO / "indexer"


def parse(command: str, *extra: str) -> argparse.Namespace:
    argv = [*command.split(), *ARGV[command], *extra]
    return build_parser(argv).parse_args(argv)


def no_namespace_inside(value: Any) -> None:
    assert not isinstance(value, argparse.Namespace)
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            no_namespace_inside(getattr(value, f.name))


def test_every_command_is_covered() -> None:
    leaves = {f"index {n}" for n in INDEX_COMMANDS} | set(COMMANDS) - {"index"}
    assert set(ARGV) == leaves


@pytest.mark.parametrize("command", sorted(ARGV))
def test_run_takes_only_the_frozen_options(command: str) -> None:
    ns = parse(command)
    options_type = ns.options.__self__  # a classmethod bound to the options dataclass
    assert ns.options.__name__ == "from_args" and dataclasses.is_dataclass(options_type)
    options = ns.options(ns)
    assert type(options) is options_type
    no_namespace_inside(options)
    name = dataclasses.fields(options)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, None)
    params = list(inspect.signature(ns.run).parameters)
    hints = typing.get_type_hints(ns.run)
    assert len(params) == 1 and hints[params[0]] is options_type, (params, hints)
    assert hints["return"] is int


def test_flags_arrive_typed() -> None:
    ns = parse("index build", "--gem-p", "4", "--scales", "1,0.5", "--threads", "2", "--qe", "3",
               "--engine", "ray", "--ray-actors", "2")
    opts = ns.options(ns)
    assert opts.index == Path("idx") and opts.images == "imgs"
    assert opts.embedding.pooling_params == {"gem": {"p": 4.0}}
    assert opts.embedding.scales == (1.0, 0.5)
    assert (opts.runtime.threads, opts.qe, opts.ray_actors) == (2, 3, 2)
    assert opts.embedding.config("gem", whiten=False).pooling_params["p"] == 4.0
    assert opts.embedding.config("sum", whiten=False).pooling == "sum"
    opts = parse("index remove").options(parse("index remove"))
    assert opts.ids == (3, 5)


def _namespace_takers(tree: ast.Module) -> list[str]:
    """Functions with a parameter annotated ``argparse.Namespace`` (or ``Namespace``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            if any(a.annotation is not None and "Namespace" in ast.unparse(a.annotation)
                   for a in args):
                found.append(node.name)
    return found


def _imports_argparse(tree: ast.Module) -> bool:
    return any((isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
               or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
               for n in ast.walk(tree))


def _builds_parsers(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.Attribute)
               and n.attr in ("add_argument", "add_parser", "ArgumentParser",
                              "ArgumentTypeError", "BooleanOptionalAction")
               for n in ast.walk(tree))


@pytest.mark.parametrize("path", sorted(INDEXER.glob("*.py")), ids=lambda p: p.name)
def test_only_from_args_receives_a_namespace(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert set(_namespace_takers(tree)) <= {"from_args", "from_namespace"}
    if _imports_argparse(tree):
        assert _builds_parsers(tree), f"{path.name} imports argparse but builds no parser"


def test_the_check_sees_a_namespace_parameter() -> None:
    tree = ast.parse("import argparse\ndef run(args: argparse.Namespace) -> int: ...\n")
    assert _namespace_takers(tree) == ["run"] and not _builds_parsers(tree)
