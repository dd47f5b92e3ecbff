"""The shape of the package: layers that only import downwards, no cycles, short modules and functions.

These read the source with :mod:`ast`; nothing is imported except where a test says so.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sid_ft"

LAYERS = {
    "errors": 0, "_tf": 0,
    "runtime": 1,
    "io": 2,
    "data": 3,
    "nets": 4,
    "eval": 5,
    "training": 6,
    "inference": 7,
    "demo": 8,
    "cli": 9,
}
"""Rank of each top-level part of ``sid_ft``: a module may import its own part or a lower one."""

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """The sid_ft modules that ``path`` imports, at any depth of the file (lazy imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sid_ft"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sid_ft"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    modules = _modules()
    return {m for m in found if m in modules}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_part_has_a_rank_and_a_docstring():
    for name, path in _modules().items():
        part = _part(name)
        if part is None:
            continue
        assert part in LAYERS, f"{path}: {part} has no place in tests/test_structure.py's LAYERS"
        if path.name == "__init__.py" and name.count(".") == 1:
            assert ast.get_docstring(ast.parse(path.read_text())), f"{path}: a subpackage says its job in a docstring"


def test_imports_go_down_the_layers():
    wrong = []
    for name, path in _modules().items():
        part = _part(name)
        if part is None:  # sid_ft/__init__: the public API, imported lazily
            continue
        for target in _imports(path):
            other = _part(target)
            if other is not None and LAYERS[other] > LAYERS[part]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports up the layers: " + ", ".join(sorted(wrong))


def test_no_import_cycles():
    graph = {name: {t for t in _imports(path) if t != name} for name, path in _modules().items()}
    graph["sid_ft"] = set()  # the lazy public API is not part of the data flow
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, set())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_modules_and_functions_are_short():
    long = []
    for name, path in _modules().items():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            long.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}: {length} lines")
    assert not long, "too long: " + "; ".join(long)


@pytest.mark.parametrize("module", ["sid_ft.training.options", "sid_ft.inference.options", "sid_ft.cli.train",
                                    "sid_ft.cli.test", "sid_ft.cli.make_pairs", "sid_ft.cli.inspect",
                                    "sid_ft.cli.calibrate", "sid_ft"])
def test_options_and_parsers_import_without_tensorflow(module):
    code = (f"import sys, {module}; "
            "bad = [m for m in ('tensorflow', 'tf_slim') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=PACKAGE.parent)
    assert done.returncode == 0, f"importing {module} loads {done.stdout.strip() or done.stderr[-400:]}"


def test_public_api_names_the_objects_where_they_live():
    import sid_ft
    from sid_ft.inference.options import InferOptions
    from sid_ft.nets.g_add.config import GAddConfig
    from sid_ft.training.options import TrainOptions

    assert sid_ft.TrainOptions is TrainOptions and sid_ft.InferOptions is InferOptions
    assert sid_ft.GAddConfig is GAddConfig
    assert callable(sid_ft.train) and sid_ft.train.__module__ == "sid_ft.training.loop"
    assert callable(sid_ft.run_inference) and sid_ft.run_inference.__module__ == "sid_ft.inference.run"
    assert sid_ft.Predictor.__module__ == "sid_ft.inference.predictor"
    assert set(sid_ft.__all__) >= {"train", "TrainOptions", "run_inference", "InferOptions", "Predictor",
                                   "GAddConfig", "SidFtError"}
    with pytest.raises(AttributeError):
        sid_ft.no_such_name  # noqa: B018
