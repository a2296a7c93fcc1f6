"""The product code's declared structure: no import cycles, no module over 400 lines.

Part of ``make verify`` (and of the unit tests). The import rules between packages are
import-linter contracts in pyproject.toml (``make imports``); this file checks what they do
not: cycles between single modules, through package ``__init__`` modules too (import-linter's
``acyclic_siblings`` compares siblings only, so ``kubehatch`` <-> ``kubehatch.steps`` is not
its business), and module size. The checks' own logic is tested on small synthetic inputs
first, so a check that cannot fail, or that finds nothing to check, shows up here.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grimp
import pytest

from hack.verify.importcontracts import illegal_imports

ROOT = Path(__file__).resolve().parents[2]
# (directory on sys.path, top-level package): the code that `make verify` holds to its shape.
PACKAGES = [(ROOT / "sdk", "kubehatch"), (ROOT / "operator", "kubehatch_operator")]
MAX_LINES = 400


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    path: Path
    line: int


def find_modules(packages: Iterable[tuple[Path, str]]) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file of the given packages."""
    modules: dict[str, Path] = {}
    for base, package in packages:
        for path in sorted((base / package).rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _known_prefix(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` or its longest prefix that is one of ``modules`` (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _from_base(importer: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module named by ``from <base> import ...`` in ``importer``."""
    if not node.level:
        return node.module or ""
    # `from .` is the importer's own package: the importer itself when it is an __init__.
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, *([node.module] if node.module else [])])


def import_edges(modules: Mapping[str, Path]) -> list[Edge]:
    """Every import from one of ``modules`` to another one, with its line.

    Every import statement in the file counts, not only those at module level: an import in a
    function or under ``if TYPE_CHECKING:`` still makes the importer depend on the imported
    module (it needs it to run, or to be type-checked and understood), so a cycle through one is
    a cycle in the design even where Python happens to survive it. Moving an import into a
    function hides a cycle; it does not remove it.

    ``from package import name`` is an import of ``package.name`` when that is a module, and of
    ``package`` otherwise (the name is an attribute of its ``__init__``). Self-imports are
    dropped.
    """
    edges: list[Edge] = []
    for importer, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [_known_prefix(alias.name, modules) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _from_base(importer, is_package, node)
                targets = [
                    sub
                    if (sub := f"{base}.{alias.name}") in modules
                    else _known_prefix(base, modules)
                    for alias in node.names
                ]
            else:
                continue
            for imported in targets:
                if imported is not None and imported != importer:
                    edges.append(Edge(importer, imported, path, node.lineno))
    return edges


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """One cycle ``[a, b, ..., a]`` for each strongly connected component of more than one node.

    Tarjan's algorithm, iteratively (no recursion limit), in a deterministic order.
    """
    nodes = sorted(set(graph) | {m for targets in graph.values() for m in targets})
    succ = {n: sorted(set(graph.get(n, ())) - {n}) for n in nodes}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(succ[node]):
                work.append((node, i + 1))
                nxt = succ[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(_cycle_in(component, succ) for component in components)


def _cycle_in(component: list[str], succ: Mapping[str, list[str]]) -> list[str]:
    """A shortest cycle through the component's first node, staying inside the component."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in succ[node]:
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if nxt not in came_from:
                    came_from[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {component}")  # pragma: no cover


def oversized(modules: Mapping[str, Path], limit: int = MAX_LINES) -> dict[str, int]:
    """The modules whose files have more than ``limit`` lines, with their line counts."""
    counts = {
        name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules.items()
    }
    return {name: n for name, n in sorted(counts.items()) if n > limit}


def describe_cycle(cycle: list[str], edges: Iterable[Edge]) -> str:
    where: dict[tuple[str, str], Edge] = {}
    for e in edges:
        where.setdefault((e.importer, e.imported), e)
    steps = []
    for importer, imported in itertools.pairwise(cycle):
        e = where[(importer, imported)]
        steps.append(f"    {importer} -> {imported}  ({e.path.relative_to(ROOT)}:{e.line})")
    return "\n".join(steps)


def _graph(edges: Iterable[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
    return graph


# --- the checks' own logic, on synthetic inputs ----------------------------------------------


def test_find_cycles_reports_each_cycle_once() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a", "e"}, "x": {"y"}}
    graph["y"] = {"x"}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["x", "y", "x"]]


def test_find_cycles_passes_on_nothing_and_on_a_dag() -> None:
    assert find_cycles({}) == []
    assert find_cycles({"a": {"b", "c"}, "b": {"c"}, "c": set(), "s": {"s"}}) == []


def test_find_cycles_handles_a_long_chain_without_recursion() -> None:
    n = 5000
    graph = {f"m{i}": {f"m{i + 1}"} for i in range(n)}
    assert find_cycles(graph) == []
    graph[f"m{n}"] = {"m0"}
    (cycle,) = find_cycles(graph)
    assert len(cycle) == n + 2 and cycle[0] == cycle[-1]


def test_import_edges_resolve_every_kind_of_import(tmp_path: Path) -> None:
    files = {
        "pkg/__init__.py": "from pkg.a import thing\nfrom . import b\n",
        "pkg/a.py": "import pkg.sub.c\nfrom pkg import sub\nimport os\n",
        "pkg/b.py": "def f():\n    from .sub import c\n",
        "pkg/sub/__init__.py": "from ..a import thing\n",
        "pkg/sub/c.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg import b\n"
            "from pkg import thing\n"
            "from . import c\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = find_modules([(tmp_path, "pkg")])
    assert sorted(modules) == ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]
    edges = {(e.importer, e.imported, e.line) for e in import_edges(modules)}
    assert edges == {
        ("pkg", "pkg.a", 1),
        ("pkg", "pkg.b", 2),
        ("pkg.a", "pkg.sub.c", 1),
        ("pkg.a", "pkg.sub", 2),
        ("pkg.b", "pkg.sub.c", 2),  # inside a function
        ("pkg.sub", "pkg.a", 1),
        ("pkg.sub.c", "pkg.b", 3),  # under TYPE_CHECKING
        ("pkg.sub.c", "pkg", 4),  # a name from the package's __init__
    }
    cycles = find_cycles(_graph(import_edges(modules)))
    assert cycles == [["pkg", "pkg.a", "pkg.sub.c", "pkg"]]


def test_oversized_lists_offenders_with_their_counts(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n" * 400)
    (tmp_path / "pkg" / "big.py").write_text("x = 1\n" * 401)
    modules = find_modules([(tmp_path, "pkg")])
    assert oversized(modules) == {"pkg.big": 401}
    assert oversized({}) == {}


def test_only_imports_contract_flags_imports_outside_the_allow_list() -> None:
    graph = grimp.ImportGraph()
    for m in ["app", "app.api", "app.api.wire", "app.errors", "app.cli", "op", "op.main", "op.x"]:
        graph.add_module(m)
    graph.add_import(importer="op.main", imported="app.api.wire", line_number=1, line_contents="")
    graph.add_import(importer="op.main", imported="op.x", line_number=2, line_contents="")
    graph.add_import(importer="op.x", imported="app.errors", line_number=3, line_contents="")
    kept = illegal_imports(graph, {"op"}, {"app.api", "app.errors"}, {"app", "op"})
    assert kept == []
    graph.add_import(importer="op.x", imported="app.cli", line_number=7, line_contents="")
    graph.add_import(importer="op.main", imported="app", line_number=9, line_contents="")
    broken = illegal_imports(graph, {"op"}, {"app.api", "app.errors"}, {"app", "op"})
    assert [(b["importer"], b["imported"], b["line_numbers"]) for b in broken] == [
        ("op.main", "app", [9]),
        ("op.x", "app.cli", [7]),
    ]
    with pytest.raises(ValueError, match=r"app\.gone"):
        illegal_imports(graph, {"op"}, {"app.gone"}, {"app", "op"})


# --- the product code --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def product_modules() -> dict[str, Path]:
    modules = find_modules(PACKAGES)
    # A wrong path would make every check below pass on nothing.
    assert {"kubehatch", "kubehatch.api.wire", "kubehatch_operator"} <= set(modules)
    return modules


def test_no_import_cycles(product_modules: dict[str, Path]) -> None:
    edges = import_edges(product_modules)
    assert any(e.imported == "kubehatch.api.wire" for e in edges)
    cycles = find_cycles(_graph(edges))
    report = "\n".join(f"  {' -> '.join(c)}\n{describe_cycle(c, edges)}" for c in cycles)
    assert not cycles, f"{len(cycles)} import cycle(s):\n{report}"


def test_no_module_over_max_lines(product_modules: dict[str, Path]) -> None:
    offenders = oversized(product_modules)
    report = "\n".join(
        f"  {product_modules[m].relative_to(ROOT)}: {n} lines" for m, n in offenders.items()
    )
    assert not offenders, f"{len(offenders)} module(s) over {MAX_LINES} lines:\n{report}"


def test_the_operator_loads_only_the_sdk_modules_it_may_import() -> None:
    """import-linter sees import lines; this sees what Python actually loads.

    ``import kubehatch.api`` runs ``kubehatch/__init__`` first: its public names load
    lazily, so the operator process holds the API types and nothing else of the SDK.
    """
    import subprocess
    import sys

    pytest.importorskip("kopf")
    script = (
        "import sys, kubehatch_operator.handlers\n"
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'kubehatch'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    allowed = ("kubehatch", "kubehatch.api", "kubehatch.errors", "kubehatch.durations")
    extra = [m for m in loaded if not any(m == a or m.startswith(a + ".") for a in allowed[1:])]
    assert extra == ["kubehatch"], f"the operator loads SDK modules it must not use: {extra}"
