"""One flag name per concept across commands: the same option (``dest``) is spelled the same in
every command that has it, one spelling means one option everywhere, and the old spellings kept
as aliases parse to the very option the new name does."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from indexer.cli import build_parser
from indexer.evaluate import EvaluateOptions

#: old spelling -> (the command, the new spelling, the arguments it needs besides)
ALIASES = {
    "--train": (["evaluate"], "--train-images", ["--dataset", "folders", "--root", "R"]),
}


def commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(parser: argparse.ArgumentParser,
             prefix: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    yield f"{prefix} {name}".strip(), sub
                    yield from walk(sub, f"{prefix} {name}")
    yield from walk(build_parser(), "")


def flags() -> Iterator[tuple[str, argparse.Action]]:
    for name, parser in commands():
        for action in parser._actions:
            if action.option_strings and action.dest not in ("help", "verbose", "quiet"):
                yield name, action


def test_each_option_has_one_name_in_every_command() -> None:
    """The name declared first (aliases follow it) is the same wherever the option is."""
    names: dict[str, set[str]] = {}
    for _, action in flags():
        names.setdefault(action.dest, set()).add(action.option_strings[0])
    assert {dest: spelt for dest, spelt in names.items() if len(spelt) > 1} == {}


def test_each_spelling_means_one_option_everywhere() -> None:
    dests: dict[str, set[str]] = {}
    for _, action in flags():
        for option in action.option_strings:
            dests.setdefault(option, set()).add(action.dest)
    assert {o: d for o, d in dests.items() if len(d) > 1} == {}


@pytest.mark.parametrize("old", sorted(ALIASES))
def test_an_old_spelling_parses_to_the_new_option(old: str) -> None:
    command, new, rest = ALIASES[old]
    parser = build_parser()
    with_new = parser.parse_args([*command, *rest, new, "DIR"])
    with_old = parser.parse_args([*command, *rest, old, "DIR"])
    assert vars(with_new) == vars(with_old)
    assert EvaluateOptions.from_args(with_old) == EvaluateOptions.from_args(with_new)
    assert EvaluateOptions.from_args(with_old).train_images == "DIR"


def test_the_training_folder_is_spelt_alike_in_build_and_evaluate() -> None:
    parser = build_parser()
    build = parser.parse_args(["index", "build", "--images", "I", "--index", "X",
                               "--train-images", "T"])
    evaluate = parser.parse_args(["evaluate", "--dataset", "folders", "--root", "R",
                                  "--train-images", "T"])
    assert build.train_images == evaluate.train_images == "T"
