"""The layers of README "Architecture", checked on the source: no module imports a layer above
its own, and no import cycle exists between modules (so no lazy import is there to break one).

Every module under spbench/ and baselines/ (installed as ``spbench_baselines``) is parsed with
``ast``; every ``import`` / ``from ... import`` of spbench is counted wherever it stands (module
level, in a function, under ``if TYPE_CHECKING``). Lazy imports that defer torch, diffusers or
transformers are fine: only spbench modules are looked at.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import its own layer and the layers below it, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("spbench", "spbench.errors", "spbench.files", "spbench.weights", "spbench.schemas", "spbench.schema_files", "spbench.canvas", "spbench.config", "spbench.registry",
              "spbench.configs", "spbench.paper_results")),
    ("data", ("spbench.data",)),
    ("run", ("spbench.run",)),
    ("conditions", ("spbench.conditions",)),
    ("models", ("spbench.models",)),
    ("methods", ("spbench.methods", "spbench_baselines")),
    ("generation", ("spbench.generation",)),
    ("metrics", ("spbench.metrics",)),
    ("results", ("spbench.results",)),
    ("tables/report", ("spbench.tables", "spbench.report")),
    ("training", ("spbench.training",)),
    ("harness", ("spbench.harness",)),
    ("CLI", ("spbench.cli", "spbench.__main__")),  # the package spbench.cli.* (one module per command group)
]
# Source folders and the package each installs as.
PACKAGES = {"spbench": "spbench", "baselines": "spbench_baselines"}


def layer_of(module: str) -> int | None:
    """Index in LAYERS of the longest prefix (whole dotted parts) that names ``module``'s layer;
    a top-level package's name stands for its ``__init__`` alone."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "spbench"
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def source_modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the source folders of ``root``."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


def _is_ours(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in PACKAGES.values())


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported spbench module) for every import in ``path``, at any depth.
    ``from P import name`` counts as ``P.name`` when that is a module, else as ``P``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names if _is_ours(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level-1 parents
                parent = package.split(".")
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            if not _is_ours(base):
                continue
            for alias in node.names:
                target = f"{base}.{alias.name}"
                out.append((node.lineno, target if target in known else base))
    return out


def import_graph(root: Path) -> dict[str, list[tuple[int, str]]]:
    modules = source_modules(root)
    known = set(modules)
    return {m: imports_of(m, p, known) for m, p in modules.items()}


def upward_imports(root: Path) -> list[str]:
    """One line per import that goes from a lower layer to a higher one, or that touches a
    module no layer names."""
    problems = []
    modules = source_modules(root)
    for module, imports in import_graph(root).items():
        rel = modules[module].relative_to(root)
        own = layer_of(module)
        if own is None:
            problems.append(f"{rel}: module {module} is in no layer (add it to LAYERS and README \"Architecture\")")
            continue
        for line, target in imports:
            theirs = layer_of(target)
            if theirs is None:
                problems.append(f"{rel}:{line}: imports {target}, which is in no layer")
            elif theirs > own:
                problems.append(f"{rel}:{line}: {module} ({LAYERS[own][0]}) imports {target} ({LAYERS[theirs][0]}), a higher layer")
    return problems


def import_cycles(root: Path) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted: a
    cycle of imports, which one of its imports must be made lazily to break."""
    graph = {m: sorted({t for _, t in imports if t != m}) for m, imports in import_graph(root).items()}
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):  # recursion depth is bounded by the number of modules (~150)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_a_higher_layer():
    problems = upward_imports(ROOT)
    assert not problems, "imports against the layers (README \"Architecture\"):\n" + "\n".join(problems)


def test_no_import_cycles_between_modules():
    cycles = import_cycles(ROOT)
    assert not cycles, "import cycles (each needs a lazy import to load):\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_check_finds_an_upward_import_and_a_cycle(tmp_path):
    """The checks can fail: a metric importing the results layer (at function level) and two
    modules importing each other are reported, with the module, line and layers."""
    pkg = tmp_path / "spbench"
    (pkg / "metrics").mkdir(parents=True)
    (pkg / "results").mkdir()
    (tmp_path / "baselines").mkdir()
    for init in (pkg, pkg / "metrics", pkg / "results"):
        (init / "__init__.py").write_text("")
    (pkg / "metrics" / "det.py").write_text("def f():\n    from spbench.results.models import x\n    return x\n")
    (pkg / "results" / "models.py").write_text("from spbench import metrics\nx = 1\n")
    (pkg / "results" / "a.py").write_text("from spbench.results import b\n")
    (pkg / "results" / "b.py").write_text("def g():\n    from . import a\n")
    (pkg / "stray.py").write_text("")
    problems = upward_imports(tmp_path)
    assert any(p.startswith("spbench/metrics/det.py:2: spbench.metrics.det (metrics) imports spbench.results.models (results)")
               for p in problems), problems
    assert any("spbench.stray is in no layer" in p for p in problems), problems
    assert len(problems) == 2, problems  # results -> metrics is downward
    assert import_cycles(tmp_path) == [["spbench.results.a", "spbench.results.b"]]
