"""The package import graph of methods/, tuner/ and dashboards/: acyclic, and the runner never reaches the
presentation package. Imports inside functions count (the AST of every module is walked)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("methods", "tuner", "dashboards")
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Our modules `name` imports anywhere in its body (relative imports resolved, packages of `from`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None (iterative depth-first search, three colours)."""
    colour = dict.fromkeys(graph, 0)
    for start in graph:
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour[child] == 1:
                return path[path.index(child):] + [child]
            elif colour[child] == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def _without_package_parents(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first; a package's own __init__ importing its
    submodules is how packages re-export, so edges from a module to the packages that contain it are kept
    out of the cycle check (they are not imports of each other's code)."""
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in graph.items()}


def test_the_walker_sees_imports_inside_functions() -> None:
    graph = _graph()
    # dashboards.command imports dashboards.report inside its handler (matplotlib only when asked)
    assert "dashboards.report" in graph["dashboards.command"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    cycle = _cycle(_without_package_parents(_graph()))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_package_level_cycle() -> None:
    """Between subpackages too (tuner.spec, tuner.run, tuner.results, ...): the data flows one way."""
    def package(m: str) -> str:
        parts = m.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 or (parts[0] == "tuner" and len(parts) == 2) else m

    graph: dict[str, set[str]] = {}
    for m, targets in _without_package_parents(_graph()).items():
        graph.setdefault(package(m), set()).update(package(t) for t in targets if package(t) != package(m))
    for targets in list(graph.values()):
        for t in targets:
            graph.setdefault(t, set())
    cycle = _cycle(graph)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle or [])


def test_no_tuner_module_imports_dashboards() -> None:
    """Data flows one way: dashboards draws what tuner.results computes, and registers its own `report` command."""
    offenders = sorted(m for m, targets in _graph().items()
                       if m.startswith("tuner") and any(t.split(".")[0] == "dashboards" for t in targets))
    assert offenders == []


def test_methods_import_nothing_of_the_tuner() -> None:
    offenders = sorted(m for m, targets in _graph().items()
                       if m.startswith("methods") and any(t.split(".")[0] != "methods" for t in targets))
    assert offenders == []


@pytest.mark.parametrize("package", ["tuner", "dashboards"])
def test_no_module_is_too_long(package: str) -> None:
    waived: set[str] = set()
    long = {m: n for m, p in _modules().items() if m.startswith(package) and m not in waived
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def _strings(path: Path) -> dict[str, int]:
    """Every string constant of a module (docstrings excluded) -> the first line it is on."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    out: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            out.setdefault(node.value, node.lineno)
    return out


def test_tag_and_metric_names_are_written_once() -> None:
    """The MLflow tag names (`tuner.tracking.tags.TAGS`) and the report's metric names (`tuner.names
    .METRIC_NAMES`) are literals in their own module only; everyone else imports them."""
    from tuner.names import METRIC_NAMES
    from tuner.tracking.tags import TAGS

    owners = {"tuner.tracking.tags": set(TAGS), "tuner.names": set(METRIC_NAMES)}
    names = set(TAGS) | set(METRIC_NAMES)
    copies = sorted(f"{path.relative_to(ROOT)}:{line}: {value!r}"
                    for module, path in _modules().items() if module.startswith(("tuner", "dashboards"))
                    for value, line in _strings(path).items()
                    if value in names - owners.get(module, set()))
    assert copies == []


def test_the_literal_walker_sees_strings_but_not_docstrings() -> None:
    strings = _strings(ROOT / "tuner" / "tracking" / "tags.py")
    assert "sharptune.role" in strings
    assert not any(s.startswith("The MLflow names of sharptune") for s in strings)


def _imports_mlflow(path: Path) -> list[int]:
    """Lines of `path` that import mlflow (`import mlflow...`, `from mlflow... import`), inside functions too."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == "mlflow" or n.startswith("mlflow.") for n in names):
            lines.append(node.lineno)
    return lines


def test_only_the_tracking_package_imports_mlflow() -> None:
    """One MLflow adapter: every read and write of MLflow goes through `tuner.tracking`'s functions."""
    offenders = sorted(f"{path.relative_to(ROOT)}:{line}" for module, path in _modules().items()
                       if module.startswith(("tuner", "dashboards")) and not module.startswith("tuner.tracking")
                       for line in _imports_mlflow(path))
    assert offenders == []


def test_the_mlflow_walker_sees_every_form(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("import os\nimport mlflow.server as s\ndef f():\n    from mlflow import MlflowClient\n"
                      "from mlflow_other import x\nfrom . import mlflow\n", encoding="utf-8")
    assert _imports_mlflow(source) == [2, 4]
    assert _imports_mlflow(ROOT / "tuner" / "tracking" / "writer.py")  # the adapter itself does import it


def test_importing_methods_loads_no_integration() -> None:
    """The package-level loop methods/__init__ -> integrations.pytorch_optimizer -> methods._registry is gone:
    a training script that imports `methods` loads no integration (the comparators register on first lookup)."""
    code = "import sys, methods; print(sorted(m for m in sys.modules if m.startswith('methods.integrations')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
