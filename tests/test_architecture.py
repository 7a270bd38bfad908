"""The package's shape: imports flow one way (CLI → workflows → parts → dataset format),
no import cycles, and loading a state reward stays light."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import rrm_data

ROOT = "rrm_data"
REPO = Path(__file__).resolve().parents[1]
HEAVY = ("timm", "jinja2", "jsonschema", "pytorch_lightning", "lightning", "datasets")
# What the dataset format may build on: nothing above it.
DATASET_MAY_IMPORT = ("rrm_data.dataset", "rrm_data.errors", "rrm_data.io", "rrm_data.resources",
                      "rrm_data.registry")


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name, with its source file."""
    found = {ROOT: Path(rrm_data.__file__)}
    for info in pkgutil.walk_packages(rrm_data.__path__, f"{ROOT}."):
        spec = info.module_finder.find_spec(info.name, None)  # type: ignore[call-arg]
        assert spec is not None and spec.origin is not None
        found[info.name] = Path(spec.origin)
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """rrm_data modules that ``name`` imports anywhere in its file (lazy imports included).

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module. Importing the
    root package (its version, ``load_reward``) is left out: every submodule imports it.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        else:
            continue
        found |= {t for t in targets if t.startswith(f"{ROOT}.") and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {t for t in imports_of(name, path, known) if t in known}
            for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_is_found() -> None:
    graph = import_graph()
    assert "rrm_data.workflows.collect" in graph
    assert "rrm_data.collection.collector" in graph["rrm_data.workflows.collect"]
    assert "rrm_data.dataset.format" in graph["rrm_data.dataset.writer"]


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_workflow_imports_another_workflow() -> None:
    for name, targets in import_graph().items():
        if name.startswith("rrm_data.workflows."):
            others = {t for t in targets if t.startswith("rrm_data.workflows.")}
            assert not others, f"{name} imports {sorted(others)}"


def test_no_part_imports_a_workflow_or_the_cli() -> None:
    for name, targets in import_graph().items():
        if name == "rrm_data.cli" or name.startswith("rrm_data.workflows"):
            continue
        upward = {t for t in targets if t == "rrm_data.cli" or t.startswith("rrm_data.workflows")}
        assert not upward, f"{name} imports {sorted(upward)}"


def test_the_dataset_format_builds_on_nothing_above_it() -> None:
    for name, targets in import_graph().items():
        if name.startswith("rrm_data.dataset"):
            above = {t for t in targets if not t.startswith(DATASET_MAY_IMPORT)}
            assert not above, f"{name} imports {sorted(above)}"


def test_loading_a_state_reward_imports_nothing_heavy(trained_reward: Path) -> None:
    code = f"""
import json, sys
import numpy as np
import rrm_data
reward = rrm_data.load_reward({str(trained_reward)!r})
out = reward(np.zeros((3, 39), np.float32), np.zeros((3, 4), np.float32))
print(json.dumps({{"shape": list(out.total.shape),
                  "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["shape"] == [3]
    assert report["loaded"] == []


def imported_names(paths: list[Path]) -> set[str]:
    """Every absolute import in these files, as written (``a.b`` for ``from a.b import c``)."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
    return names


def third_party_imports() -> list[str]:
    """Every outside module the package imports (as written: ``a.b`` for ``from a.b import c``)."""
    return sorted(n for n in imported_names(list(modules().values()))
                  if n.split(".")[0] not in (ROOT, "__future__"))


# Imported only where present (guarded): torch's own dependency on Linux, not ours to declare.
UNDECLARED_OPTIONAL = {"triton"}


def declared_distributions() -> set[str]:
    """pyproject.toml's dependencies and optional dependencies, by canonical name."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {canonical(re.match(r"[A-Za-z0-9._-]+", r).group())  # type: ignore[union-attr]
            for r in requirements}


def canonical(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_imported_library_is_declared() -> None:
    """Each outside top-level module that rrm_data, its tests or its benchmarks import comes
    from a distribution pyproject.toml declares (a library installed by chance does not count)."""
    local = {p.stem for folder in ("tests", "benchmarks") for p in (REPO / folder).rglob("*.py")}
    files = [*modules().values(), *(REPO / "tests").rglob("*.py"),
             *(REPO / "benchmarks").rglob("*.py")]
    tops = {n.split(".")[0] for n in imported_names(files)}
    outside = tops - set(sys.stdlib_module_names) - local - {ROOT, "tests", "__future__"}
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    undeclared = {top: providers.get(top) for top in sorted(outside - UNDECLARED_OPTIONAL)
                  if not declared & {canonical(d) for d in providers.get(top, [])}}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_importing_the_library_changes_no_process_state() -> None:
    """Outside libraries may set warning filters when imported; rrm_data's modules may not
    change the environment, warning filters or log levels."""
    code = f"""
import importlib, logging, os, pkgutil, warnings
for name in {third_party_imports()!r}:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
state = lambda: (dict(os.environ), list(warnings.filters),
                 {{n: logging.getLogger(n).level for n in logging.root.manager.loggerDict}})
before = state()
import rrm_data
for m in pkgutil.walk_packages(rrm_data.__path__, "rrm_data."):
    importlib.import_module(m.name)
after = state()
assert before[0] == after[0], "environment"
assert before[1] == after[1], "warning filters"
changed = [n for n, level in before[2].items() if after[2][n] != level]
assert not changed, f"log levels of {{changed}}"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]



def test_importing_the_library_loads_no_triton() -> None:
    """With OSMesa chosen, no rrm_data module loads Triton on import: it is loaded apart at first
    use (``triton_apart``). Triton is kept out of the process (every import of it is recorded,
    then refused), so that Lightning's own import of it cannot hide rrm_data's."""
    code = """
import importlib, importlib.abc, importlib.machinery, json, pkgutil, sys, traceback
callers = []

class Spy(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name == "triton":
            return importlib.machinery.ModuleSpec(name, self)
    def exec_module(self, module):
        callers.append([frame.filename for frame in traceback.extract_stack()])
        raise ImportError("kept out by the test")

sys.meta_path.insert(0, Spy())
import rrm_data
for m in pkgutil.walk_packages(rrm_data.__path__, "rrm_data."):
    importlib.import_module(m.name)
on_import = list(callers)
from rrm_data.reward.networks import EnsembleLinear
EnsembleLinear(2, 3, 4)  # first use: Triton is asked for, apart
print(json.dumps({"on_import": on_import, "on_use": callers[len(on_import):],
                  "loaded": "triton" in sys.modules}))
"""
    env = {**os.environ, "MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    def apart(callers: list[list[str]]) -> list[list[str]]:
        return [c for c in callers if any(f.endswith("triton_apart.py") for f in c)]

    assert not apart(report["on_import"]), apart(report["on_import"])[0][-6:]
    assert apart(report["on_use"]) and not report["loaded"]
