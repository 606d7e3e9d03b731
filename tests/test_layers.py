"""The packages are layers that only point down: each imports packages of lower layers only (not
its own layer's, not a higher one's), so no two packages import each other, however indirectly.

The graph is read from the source, every import statement (function-local ones and those under
TYPE_CHECKING too) and every import_module("...") of a literal name, not from what a test run
happens to import. When a lower layer's change needs a higher one to react, the lower one declares
a hook and liaison/app.py registers the higher one's function there (README, Layout).

`python -m tests.test_layers` prints the package graph.
"""

import ast
from collections import deque
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Lowest first; the packages of one layer do not import each other.
LAYERS: list[set[str]] = [
    {"api"},  # the kernel: settings, database, errors, middleware, health, Redis, migrations
    {"audit", "events"},  # the trail and the event log, which every domain above writes to
    {"auth"},  # who is calling, and may they
    {"orgs"},  # organizations and their users
    {"agreements", "rosters"},  # who may send to whom; who is on call
    {"consults"},  # consults, routing, escalation
    {"webhooks"},  # signed deliveries of an org's consult events, fed from the event log
    {"signaling", "fhir"},  # calls of a consult; consults retold in FHIR R4
    {"liaison"},  # the composition root (liaison/app.py), the command line, the demo
]
# Outside the layers: they use everything, and nothing layered may import them.
UNLAYERED = {"tests", "bench"}

# Signaling's parts, lowest first, by the same rule: a part imports lower parts only. Its domain
# face (router, schemas, models, service) sits beside them and may use any.
SIGNALING_PARTS: list[set[str]] = [
    {"core"},  # decisions without I/O
    {"fabric", "calls"},  # the other nodes; a call's tokens, records and close orders
    {"peers"},  # aiortc peers
    {"edge"},  # the sockets
]
# All the signaling core may import: the standard library's modules that do no I/O, orjson, and
# itself. Nothing that reaches a socket, Redis, a database, the event loop or WebRTC (websockets,
# redis, starlette, sqlalchemy, aiortc, asyncio); add a module here only if it is as pure.
CORE_MAY_IMPORT = {
    "__future__",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "itertools",
    "json",
    "math",
    "operator",
    "orjson",
    "re",
    "secrets",
    "time",
    "typing",
}


def packages(root: Path = ROOT) -> set[str]:
    """Every top-level package of the repository."""
    return {p.parent.name for p in root.glob("*/__init__.py") if not p.parent.name.startswith(".")}


def layer_of(layers: list[set[str]]) -> dict[str, int]:
    return {pkg: i for i, layer in enumerate(layers) for pkg in layer}


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """(dotted name, line) of every absolute import in one file; relative ones stay in its package."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value, node.lineno


def graph(root: Path = ROOT, layered: set[str] | None = None) -> dict[str, dict[str, list[str]]]:
    """package -> {package it imports -> ["file:line", ...]}, between the repository's own packages."""
    mine = packages(root)
    out: dict[str, dict[str, list[str]]] = {}
    for pkg in sorted(layered if layered is not None else mine - UNLAYERED):
        out[pkg] = {}
        for path in sorted((root / pkg).rglob("*.py")):
            for name, line in imported(path):
                target = name.split(".")[0]
                if target in mine and target != pkg:
                    out[pkg].setdefault(target, []).append(f"{path.relative_to(root)}:{line}")
    return out


def upward(edges: dict[str, dict[str, list[str]]], layers: list[set[str]]) -> list[str]:
    """Every import that does not point to a lower layer."""
    rank = layer_of(layers)
    problems = []
    for pkg, targets in edges.items():
        for target, where in sorted(targets.items()):
            if target not in rank:
                problems += [f"{w}: {pkg} imports {target}, which is outside the layers" for w in where]
            elif rank[target] >= rank[pkg]:
                how = "its own layer" if rank[target] == rank[pkg] else "a higher layer"
                problems += [f"{w}: {pkg} imports {target}, of {how}" for w in where]
    return problems


def cycles(edges: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """The groups of packages that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while (top := stack.pop()) != node:
                group.append(top)
            group.append(node)
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def shortest_cycle(edges: dict[str, dict[str, list[str]]], group: list[str]) -> str:
    """The shortest way round a group of packages that import each other, each step with where."""

    def way_back(start: str) -> list[str]:  # breadth first: the first way back is the shortest
        queue, seen = deque([[start]]), {start}
        while queue:
            path = queue.popleft()
            for target in sorted(edges.get(path[-1], {})):
                if target == start:
                    return path
                if target in group and target not in seen:
                    seen.add(target)
                    queue.append(path + [target])
        return []

    best = min((way_back(start) for start in group), key=len)
    return (
        " -> ".join(f"{a} ({edges[a][b][0]})" for a, b in zip(best, best[1:] + best[:1], strict=False))
        + f" -> {best[0]}"
    )


def signaling_parts(root: Path = ROOT) -> dict[str, dict[str, list[str]]]:
    """part -> {part it imports -> ["file:line", ...]}, between the sub-packages of signaling/."""
    base = root / "signaling"
    parts = {p.parent.name for p in base.glob("*/__init__.py")}
    out: dict[str, dict[str, list[str]]] = {part: {} for part in sorted(parts)}
    for part in parts:
        for path in sorted((base / part).rglob("*.py")):
            for name, line in imported(path):
                bits = name.split(".")
                if bits[0] == "signaling" and len(bits) > 1 and bits[1] in parts and bits[1] != part:
                    out[part].setdefault(bits[1], []).append(f"{path.relative_to(root)}:{line}")
    return out


def impure(root: Path = ROOT) -> list[str]:
    """Every import of the signaling core outside CORE_MAY_IMPORT and signaling.core itself."""
    problems = []
    for path in sorted((root / "signaling" / "core").rglob("*.py")):
        for name, line in imported(path):
            if name.split(".")[0] not in CORE_MAY_IMPORT and not (name + ".").startswith("signaling.core."):
                problems.append(f"{path.relative_to(root)}:{line}: the signaling core imports {name}")
    return problems


def test_every_package_has_a_layer():
    declared = set().union(*LAYERS)
    assert packages() - UNLAYERED - declared == set(), "a new package: give it a layer in LAYERS"
    assert declared - packages() == set(), "a layer names a package that is gone"
    assert sum(len(layer) for layer in LAYERS) == len(declared), "a package is in two layers"


def test_imports_point_down():
    problems = upward(graph(), LAYERS)
    assert not problems, "imports that do not point down the layers:\n" + "\n".join(problems)


def test_no_import_cycle_between_packages():
    edges = graph()
    found = cycles(edges)
    detail = [f"{', '.join(group)}; for one: {shortest_cycle(edges, group)}" for group in found]
    assert not found, "packages that import each other:\n" + "\n".join(detail)


def test_signaling_parts_point_down():
    edges = signaling_parts()
    declared = set().union(*SIGNALING_PARTS)
    assert set(edges) == declared, "a signaling sub-package without a place in SIGNALING_PARTS, or one gone"
    problems = upward(edges, SIGNALING_PARTS)
    assert not problems, "signaling's parts, imports that do not point down:\n" + "\n".join(problems)


def test_the_signaling_core_does_no_io():
    problems = impure()
    assert not problems, "\n".join(problems)


def test_the_core_check_refuses_io_and_the_other_parts(tmp_path):
    core = tmp_path / "signaling" / "core"
    core.mkdir(parents=True)
    (tmp_path / "signaling" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("")
    (core / "ok.py").write_text(
        "import json\nfrom signaling.core.ok import x\nfrom signaling.core import y\n"
    )
    (core / "bad.py").write_text(
        "import asyncio\nfrom redis.asyncio import Redis\nimport websockets\n"
        "def f():\n    from starlette.websockets import WebSocket\n    import sqlalchemy, aiortc\n"
        "from signaling.fabric.lane import Lane\nimport signaling\n"
    )
    assert sorted(p.split(": ", 1)[1] for p in impure(tmp_path)) == sorted(
        f"the signaling core imports {name}"
        for name in (
            "asyncio",
            "redis.asyncio",
            "websockets",
            "starlette.websockets",
            "sqlalchemy",
            "aiortc",
            "signaling.fabric.lane",
            "signaling",
        )
    )


def test_the_check_sees_every_kind_of_import(tmp_path):
    """Function-local and TYPE_CHECKING imports, import_module, and a cycle through a third package."""
    files = {
        "low/__init__.py": "",
        "low/a.py": "def f():\n    import high.x\n",
        "low/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mid import y\n",
        "low/c.py": "import importlib\nimportlib.import_module('high.z')\nfrom . import a\n",
        "mid/__init__.py": "import low.a\n",
        "high/__init__.py": "from mid import q\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    edges = graph(tmp_path, {"low", "mid", "high"})
    assert {pkg: sorted(t) for pkg, t in edges.items()} == {
        "high": ["mid"],
        "low": ["high", "mid"],
        "mid": ["low"],
    }
    assert upward(edges, [{"low"}, {"mid"}, {"high"}]) == [
        "low/a.py:2: low imports high, of a higher layer",
        "low/c.py:2: low imports high, of a higher layer",
        "low/b.py:3: low imports mid, of a higher layer",
    ]
    assert cycles(edges) == [["high", "low", "mid"]]
    assert (
        shortest_cycle(edges, ["high", "low", "mid"]) == "low (low/b.py:3) -> mid (mid/__init__.py:1) -> low"
    )


if __name__ == "__main__":
    edges, rank = graph(), layer_of(LAYERS)
    for pkg in sorted(edges, key=lambda p: (rank.get(p, len(LAYERS)), p)):
        print(
            f"{pkg} -> {', '.join(sorted(edges[pkg], key=lambda p: (rank.get(p, len(LAYERS)), p))) or '(nothing)'}"
        )
