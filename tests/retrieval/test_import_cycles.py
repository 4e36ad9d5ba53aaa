"""No import cycle anywhere in ``retrieval``: module-level and function-level imports both count
(as grimp, which import-linter uses, records them); ``if TYPE_CHECKING:`` imports do not."""

from __future__ import annotations

import grimp
import pytest


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each as one cycle
    through its members, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph[v]:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _path(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One cycle inside a component: from its first member back to it, by breadth first."""
    start, inside = members[0], set(members)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w == start:
                    chain = [v]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return [start, *reversed(chain[:-1]), start]
                if w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    return members


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c"], ["e"]]
    assert _path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_retrieval_has_no_import_cycle() -> None:
    built = grimp.build_graph("retrieval", exclude_type_checking_imports=True)
    graph = {m: set(built.find_modules_directly_imported_by(m)) for m in built.modules}
    assert len(graph) > 50 and "retrieval.index" in graph  # the whole package was read
    found = [" -> ".join(_path(graph, members)) + f"  (all entangled: {', '.join(members)})"
             for members in cycles(graph)]
    if found:
        pytest.fail("import cycles in retrieval:\n  " + "\n  ".join(found))
