"""The import graph of SwingDesk: layers, module sizes, import cycles and wrong-way imports.

Run from anywhere: ``python tools/import_graph.py`` (``--json`` for machine output). It parses
``swing_core/``, ``pages/`` and ``app.py`` with :mod:`ast` (nothing is imported or run) and
reads every import, the ones inside functions too. Exit status 1 when there is a cycle or a
violation, 0 otherwise.

What counts:

* **Edges** go to the module an import names: ``from swing_core.perf import timers`` → the
  module ``swing_core.perf.timers``; ``from swing_core.views import scan_view`` → the package
  ``swing_core.views``. A *lazy* package (PEP 562: a module-level ``dict[str, str]`` of public
  name → defining module, read by ``__getattr__``, like ``swing_core/__init__.py``) imports
  nothing until a name is used, so a name taken from it (``from swing_core.perf import timed``,
  or ``perf.timed`` after ``from swing_core import perf``) is an edge to the defining module.
  The implicit import of parent packages is not an edge.
* **Layers** (DESIGN.md, "Layers"), dependencies pointing down only: an import from a lower
  layer to a higher one is a violation (imports inside one layer are fine). Every module
  belongs to a layer through its concept, the first name under ``swing_core``; a module of no
  known concept is a violation too, so a new module gets a place.
* **Cycles**: strongly connected components of the graph among ``swing_core`` modules
  (imports under ``if TYPE_CHECKING:`` left out: they never run).
* **Violations** besides the layers: ``swing_core`` importing Streamlit, anywhere; a module
  using another concept's private name (``from swing_core.x import _name``, ``x._name``) or
  private module (``swing_core.market._common``). Inside one concept (``swing_core.perf.*``;
  ``app.py`` with ``pages/``) a leading underscore is shared by the package.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Layers from the top (views) down to infrastructure; a module may import its own layer and
#: those below it. Keys are concepts: the first name under ``swing_core``, or ``pages``/``app``.
LAYERS: dict[str, tuple[str, ...]] = {
    "views": ("app", "pages", "__main__", "cli", "cli_backtest", "cli_journal",
              "cli_profile"),
    "presentation": ("charts", "views"),
    "services": ("agent", "backtest", "patterns", "priors", "llm", "journal", "services",
                 "swingagent", "verdict"),
    # calibration: isotonic fits, reliability curve and Brier score are statistics (metrics
    # uses them), hence compute; its one loader reads the database lazily.
    "compute": ("indicators", "strategy", "features", "frame", "exits", "portfolio", "metrics",
                "calibration", "costs"),
    "infrastructure": ("market", "db", "migrations", "perf", "config", "clock", "timefmt",
                       "errors", "models", "lazy", "numbers"),
}
LAYER_RANK: dict[str, int] = {name: len(LAYERS) - i for i, name in enumerate(LAYERS)}
CONCEPT_LAYER: dict[str, str] = {c: layer for layer, concepts in LAYERS.items() for c in concepts}
#: The package facade (``swing_core/__init__.py``): exempt from layering, it re-exports lazily.
FACADE = "swing_core"
#: Third-party packages the engine must never import.
FORBIDDEN_IN_ENGINE: tuple[str, ...] = ("streamlit",)


@dataclass(frozen=True)
class Edge:
    """One import: ``source`` imports ``target`` (a module of the tree, or an external package
    when ``external``), at ``line``; ``names`` taken from it; inside a function or not."""

    source: str
    target: str
    line: int
    in_function: bool
    type_only: bool = False
    external: bool = False
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Violation:
    kind: str  # "layer", "streamlit", "private", "unlayered"
    source: str
    target: str
    line: int
    detail: str


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    tree: ast.Module
    is_package: bool
    lazy: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading the tree


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(root: Path = ROOT) -> dict[str, Module]:
    """Every module of ``swing_core/``, ``pages/`` and ``app.py`` under ``root``, parsed."""
    paths = [*sorted((root / "swing_core").rglob("*.py")), *sorted((root / "pages").glob("*.py"))]
    if (root / "app.py").is_file():
        paths.append(root / "app.py")
    modules: dict[str, Module] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8")
        name = _module_name(path, root)
        module = Module(name, path, len(text.splitlines()), ast.parse(text, str(path)),
                        path.name == "__init__.py")
        module.lazy = _lazy_table(module.tree)
        modules[name] = module
    return modules


def _lazy_table(tree: ast.Module) -> dict[str, str]:
    """The PEP 562 table of a lazy package: a module-level dict of str → "swing_core.…" str,
    when the module also defines ``__getattr__``."""
    if not any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
        return {}
    table: dict[str, str] = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        if not isinstance(value, ast.Dict) or not value.keys:
            continue
        pairs = [(k.value, v.value) for k, v in zip(value.keys, value.values, strict=True)
                 if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
                 and isinstance(k.value, str) and isinstance(v.value, str)]
        if len(pairs) == len(value.keys) and all(v.startswith("swing_core") for _, v in pairs):
            table.update(pairs)
    return table


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, in_function: bool = False, type_only: bool = False
          ) -> Iterator[tuple[ast.AST, bool, bool]]:
    """Every node under ``node`` with whether it sits in a function / a TYPE_CHECKING block."""
    for child in ast.iter_child_nodes(node):
        yield child, in_function, type_only
        inner_fn = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef
                                             | ast.Lambda)
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for part in child.body:
                yield part, inner_fn, True
                yield from _walk(part, inner_fn, True)
            for part in child.orelse:
                yield part, inner_fn, type_only
                yield from _walk(part, inner_fn, type_only)
            continue
        yield from _walk(child, inner_fn, type_only)


class Graph:
    """The import edges of every module, resolved as the module docstring says."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self.edges: list[Edge] = []
        for module in modules.values():
            self.edges.extend(self._edges_of(module))

    def _resolve_from(self, module: Module, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        return f"{package}.{node.module}" if node.module else package

    def _name_target(self, package: str, name: str, depth: int = 0) -> str:
        """The module ``from package import name`` depends on (see the module docstring)."""
        if f"{package}.{name}" in self.modules:
            return f"{package}.{name}"
        lazy = self.modules[package].lazy if package in self.modules else {}
        target = lazy.get(name)
        if target in self.modules and target != package and depth < 8:
            return self._name_target(target, name, depth + 1)  # lazy tables may chain
        return package

    def _edges_of(self, module: Module) -> Iterator[Edge]:
        bound: dict[str, str] = {}  # local name -> module of the tree it is bound to
        for node, in_fn, type_only in _walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield self._edge(module, alias.name, node.lineno, in_fn, type_only)
                    if alias.asname and alias.name in self.modules:
                        bound[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                package = self._resolve_from(module, node)
                if package not in self.modules:
                    yield self._edge(module, package, node.lineno, in_fn, type_only,
                                     tuple(a.name for a in node.names))
                    continue
                taken: dict[str, list[str]] = {}  # target module -> names taken from it
                for alias in node.names:
                    target = self._name_target(package, alias.name)
                    taken.setdefault(target, [])
                    if target == f"{package}.{alias.name}":
                        bound[alias.asname or alias.name] = target
                    else:
                        taken[target].append(alias.name)
                for target, names in taken.items():
                    yield Edge(module.name, target, node.lineno, in_fn, type_only, False,
                               tuple(names))
        yield from self._attribute_edges(module, bound)

    def _attribute_edges(self, module: Module, bound: dict[str, str]) -> Iterator[Edge]:
        """``mod.name`` where ``mod`` is bound to a module of the tree: the name taken from it
        (for private names), resolved through a lazy package's table."""
        for node, in_fn, type_only in _walk(module.tree):
            if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound):
                continue
            package = bound[node.value.id]
            target = self._name_target(package, node.attr)
            if target != package or node.attr.startswith("_"):
                yield Edge(module.name, target, node.lineno, in_fn, type_only, False,
                           () if target == f"{package}.{node.attr}" else (node.attr,))

    def _edge(self, module: Module, name: str, line: int, in_fn: bool, type_only: bool,
              names: tuple[str, ...] = ()) -> Edge:
        if name in self.modules:
            return Edge(module.name, name, line, in_fn, type_only, False, names)
        return Edge(module.name, name.split(".")[0], line, in_fn, type_only, True, names)

    # -- questions ---------------------------------------------------------------------------
    def internal(self) -> list[Edge]:
        return [e for e in self.edges if not e.external and e.source != e.target]

    def cycles(self) -> list[list[str]]:
        """Strongly connected components (more than one module) among ``swing_core`` modules,
        TYPE_CHECKING imports left out; each sorted, largest first."""
        graph: dict[str, set[str]] = {m: set() for m in self.modules if _is_engine(m)}
        for edge in self.internal():
            if not edge.type_only and edge.source in graph and edge.target in graph:
                graph[edge.source].add(edge.target)
        return sorted((sorted(c) for c in _tarjan(graph) if len(c) > 1),
                      key=lambda c: (-len(c), c))

    def violations(self) -> list[Violation]:
        found: list[Violation] = []
        for name in sorted(self.modules):
            if name != FACADE and concept(name) not in CONCEPT_LAYER:
                found.append(Violation("unlayered", name, "", 0,
                                       f"concept {concept(name)!r} has no layer in LAYERS"))
        for edge in sorted(set(self.edges), key=lambda e: (e.source, e.line, e.target)):
            found.extend(self._check(edge))
        return found

    def _check(self, edge: Edge) -> Iterator[Violation]:
        where = "in a function" if edge.in_function else "at module level"
        if edge.external:
            if _is_engine(edge.source) and edge.target in FORBIDDEN_IN_ENGINE:
                yield Violation("streamlit", edge.source, edge.target, edge.line,
                                f"swing_core imports {edge.target} ({where})")
            return
        src_layer, dst_layer = layer_of(edge.source), layer_of(edge.target)
        if (src_layer and dst_layer and edge.source != FACADE
                and LAYER_RANK[src_layer] < LAYER_RANK[dst_layer]):
            yield Violation("layer", edge.source, edge.target, edge.line,
                            f"{src_layer} imports {dst_layer} ({where})")
        if concept(edge.source) == concept(edge.target) or edge.target == FACADE:
            return
        private_module = next((p for p in edge.target.split(".")[1:] if p.startswith("_")
                               and not p.startswith("__")), None)
        if private_module:
            yield Violation("private", edge.source, edge.target, edge.line,
                            f"imports the private module {edge.target}")
        for name in edge.names:
            if name.startswith("_") and not name.startswith("__"):
                yield Violation("private", edge.source, edge.target, edge.line,
                                f"uses the private name {name} of {edge.target}")


def _is_engine(name: str) -> bool:
    return name == FACADE or name.startswith(FACADE + ".")


def concept(name: str) -> str:
    """``swing_core.perf.timers`` → ``perf``; ``pages.explorer`` and ``app`` → ``app``/``pages``
    (one concept for privacy: the dashboard)."""
    parts = name.split(".")
    if parts[0] == FACADE:
        return parts[1] if len(parts) > 1 else FACADE
    return "pages" if parts[0] in ("pages", "app") else parts[0]


def layer_of(name: str) -> str | None:
    if name == FACADE:
        return None
    if name == "app":
        return "views"
    return CONCEPT_LAYER.get(concept(name))


def _tarjan(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


# --------------------------------------------------------------------------- report


def report(root: Path = ROOT, *, max_lines: int = 400) -> dict[str, object]:
    """Everything the tool prints, as plain data (what ``--json`` writes)."""
    graph = Graph(discover(root))
    cycles = graph.cycles()
    cycle_edges = []
    for members in cycles:
        inside = set(members)
        cycle_edges.append([asdict(e) for e in sorted(set(graph.internal()),
                                                      key=lambda e: (e.source, e.line))
                            if e.source in inside and e.target in inside and not e.type_only])
    layers = {layer: sorted(m for m in graph.modules if layer_of(m) == layer) for layer in LAYERS}
    pairs: dict[tuple[str, str], bool] = {}  # (importer, imported) -> only inside functions
    for edge in graph.internal():
        key = (edge.source, edge.target)
        pairs[key] = pairs.get(key, True) and edge.in_function
    return {
        "layers": {layer: {"rank": LAYER_RANK[layer], "concepts": list(LAYERS[layer]),
                           "modules": layers[layer]} for layer in LAYERS},
        "sizes": {name: graph.modules[name].lines for name in sorted(graph.modules)},
        "over_max_lines": sorted((n for n, m in graph.modules.items() if m.lines > max_lines),
                                 key=lambda n: -graph.modules[n].lines),
        "max_lines": max_lines,
        "edges": len(pairs),
        "in_function_edges": sum(only_in_function for only_in_function in pairs.values()),
        "dependencies": [{"source": src, "target": dst, "only_in_function": inner}
                         for (src, dst), inner in sorted(pairs.items())],
        "cycles": cycles,
        "cycle_edges": cycle_edges,
        "violations": [asdict(v) for v in graph.violations()],
    }


def _print_text(data: dict[str, object]) -> None:
    sizes: dict[str, int] = data["sizes"]  # type: ignore[assignment]
    print("Layers (imports point down only; a layer may import itself and those below):")
    for layer, info in data["layers"].items():  # type: ignore[union-attr]
        modules = info["modules"]
        total = sum(sizes[m] for m in modules)
        print(f"  {info['rank']} {layer:<15} {', '.join(info['concepts'])}")
        print(f"    {len(modules)} modules, {total:,} lines")
    print(f"\nModule sizes (lines), largest first; over {data['max_lines']} marked *:")
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        mark = "*" if sizes[name] > data["max_lines"] else " "  # type: ignore[operator]
        print(f"  {mark} {sizes[name]:>5}  {name}")
    print(f"\n{data['edges']} module-to-module dependencies; {data['in_function_edges']} of them "
          "only through imports inside functions.")
    cycles: list[list[str]] = data["cycles"]  # type: ignore[assignment]
    print(f"\nImport cycles among swing_core modules: {len(cycles)}")
    for members, edges in zip(cycles, data["cycle_edges"], strict=True):  # type: ignore[arg-type]
        print(f"  - {' <-> '.join(members)}")
        for edge in edges:
            where = "function" if edge["in_function"] else "module"
            print(f"      {edge['source']}:{edge['line']} -> {edge['target']} ({where})")
    violations: list[dict[str, object]] = data["violations"]  # type: ignore[assignment]
    print(f"\nViolations: {len(violations)}")
    for v in violations:
        line = f":{v['line']}" if v["line"] else ""
        target = f" -> {v['target']}" if v["target"] else ""
        print(f"  [{v['kind']}] {v['source']}{line}{target}: {v['detail']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository root")
    parser.add_argument("--max-lines", type=int, default=400,
                        help="mark modules longer than this (default 400)")
    args = parser.parse_args(argv)
    data = report(args.root, max_lines=args.max_lines)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _print_text(data)
    return 1 if data["cycles"] or data["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
