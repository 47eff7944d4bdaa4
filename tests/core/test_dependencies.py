"""The dependency rules of docs/architecture.md, read from the source with `ast` (no Django).

- Stages: each app imports only itself and the stages below it (core imports no app).
- `config` and `demo` are entry points: they may import anything, and no app imports them.
- `analysis.stats` is the pure statistics engine: any app may use it, and it imports neither
  Django nor any app.
- Within an app, models/selectors do not import services/apis/admin, and services do not import
  apis/admin.
- No import cycle between the project's modules at import time (imports inside functions,
  e.g. a Celery task's service, are left out of this one: they run after every module loaded).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Lowest first: each may import the ones before it, never the ones after it.
STAGES = ("core", "audit", "experiments", "assignment", "events", "analysis")
ENTRY_POINTS = ("config", "demo")
PURE_ENGINE = "analysis.stats"
# Inside an app: a module may import the kinds of the same rank or lower.
MODULE_RANK = {"models": 0, "selectors": 1, "services": 2, "apis": 3, "admin": 3}


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module, e.g. "experiments.admin"
    target: str  # the imported name, e.g. "analysis.stats.sample_size"
    line: int
    at_import_time: bool  # False inside a function or under TYPE_CHECKING

    @property
    def where(self) -> str:
        return f"{self.source.replace('.', '/')}.py:{self.line} imports {self.target}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for top in (*STAGES, *ENTRY_POINTS)
        for path in sorted((ROOT / top).rglob("*.py"))
        if "migrations" not in path.parts
    }


class _ImportCollector(ast.NodeVisitor):
    """Collects absolute imports; `lazy` counts the enclosing functions and TYPE_CHECKING
    blocks (their imports do not run when the module loads)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lazy = 0
        self.found: list[Import] = []

    def _add(self, target: str, node: ast.stmt) -> None:
        self.found.append(Import(self.source, target, node.lineno, self.lazy == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.level == 0:
            self._add(node.module, node)
            for alias in node.names:
                self._add(f"{node.module}.{alias.name}", node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.lazy += 1
        self.generic_visit(node)
        self.lazy -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" not in ast.unparse(node.test):
            self.generic_visit(node)
            return
        self.lazy += 1
        for child in node.body:
            self.visit(child)
        self.lazy -= 1
        for child in node.orelse:
            self.visit(child)


def imports_of(source: str, code: str) -> list[Import]:
    """Every absolute import in `code`, marked with whether it runs when the module loads."""
    collector = _ImportCollector(source)
    collector.visit(ast.parse(code))
    return collector.found


def all_imports() -> list[Import]:
    return [
        found
        for name, path in project_modules().items()
        for found in imports_of(name, path.read_text())
    ]


def app_of(module: str) -> str:
    return module.partition(".")[0]


def direction_violations(imports: list[Import]) -> list[str]:
    """The imports that break the stage order, the entry points or the engine's purity."""
    bad = []
    for found in imports:
        source_app, target_app = app_of(found.source), app_of(found.target)
        if found.source.startswith(PURE_ENGINE):
            if target_app in ("django", "rest_framework", *STAGES, *ENTRY_POINTS) and not (
                found.target.startswith(PURE_ENGINE)
            ):
                bad.append(f"{found.where}: the statistics engine imports no Django and no app")
            continue
        if source_app in ENTRY_POINTS or source_app == target_app:
            continue
        if target_app in ENTRY_POINTS:
            bad.append(f"{found.where}: only entry points import {target_app}")
        elif (
            target_app in STAGES
            and not found.target.startswith(PURE_ENGINE)
            and STAGES.index(target_app) > STAGES.index(source_app)
        ):
            bad.append(f"{found.where}: {source_app} is below {target_app}")
    return bad


def layer_violations(imports: list[Import]) -> list[str]:
    bad = []
    for found in imports:
        source_app, _, source_kind = found.source.partition(".")
        target_app, _, target_rest = found.target.partition(".")
        target_kind = target_rest.partition(".")[0]
        if source_app != target_app or source_app not in STAGES:
            continue
        source_rank, target_rank = MODULE_RANK.get(source_kind), MODULE_RANK.get(target_kind)
        if source_rank is not None and target_rank is not None and target_rank > source_rank:
            bad.append(f"{found.where}: {source_kind} is below {target_kind}")
    return bad


def import_time_cycles(imports: list[Import], modules: set[str]) -> list[list[str]]:
    """Cycles in the graph of imports that run when a module loads (project modules only)."""

    def project_module(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for found in imports:
        target = project_module(found.target)
        if found.at_import_time and target is not None and target != found.source:
            graph[found.source].add(target)
    cycles: list[list[str]] = []
    state: dict[str, str] = {}  # "open" while on the path, "done" after
    path: list[str] = []

    def walk(module: str) -> None:
        state[module] = "open"
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target)
        path.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            walk(module)
    return cycles


# The project itself.


def test_apps__import_only_lower_stages_and_the_pure_engine() -> None:
    assert direction_violations(all_imports()) == []


def test_app_modules__import_only_lower_kinds_of_the_same_app() -> None:
    assert layer_violations(all_imports()) == []


def test_project_modules__no_import_cycle_at_import_time() -> None:
    assert import_time_cycles(all_imports(), set(project_modules())) == []


def test_core__imports_no_app_even_inside_functions() -> None:
    imports = [i for i in all_imports() if app_of(i.source) == "core"]
    assert imports, "core's modules were not found"
    assert {app_of(i.target) for i in imports} & {*STAGES[1:], *ENTRY_POINTS} == set()


# Only core installed: a fresh process loads every core module and no app's.
CORE_ALONE = """
import importlib, json, pkgutil, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=[
        "django.contrib.auth", "django.contrib.contenttypes", "rest_framework",
        "drf_spectacular", "core",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    REDIS_URL="",
)
django.setup()
import core
names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
for name in names:
    if ".migrations" not in name:
        importlib.import_module(name)
print(json.dumps({"core": names, "loaded": sorted(sys.modules)}))
"""


def test_core__loads_with_no_other_app_installed() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CORE_ALONE], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"core.auth", "core.ratelimit", "core.actors", "core.errors"} <= set(report["core"])
    apps = {*STAGES[1:], *ENTRY_POINTS}
    assert [m for m in report["loaded"] if app_of(m) in apps] == []


# The checks themselves: each catches what it is for.


@pytest.mark.parametrize(
    ("source", "code", "expected"),
    [
        ("core.auth", "from experiments.models import ApiKey", "core is below experiments"),
        ("assignment.apis", "def f():\n    from analysis import services", "assignment is below"),
        ("audit.services", "import config.health", "only entry points import config"),
        ("analysis.stats.power", "from django.db import models", "imports no Django"),
    ],
)
def test_direction_violations__upward_imports__reported(
    source: str, code: str, expected: str
) -> None:
    assert expected in " ".join(direction_violations(imports_of(source, code)))


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ("experiments.admin", "from analysis.stats import sample_size"),
        ("analysis.services", "from experiments.models import Experiment"),
        ("demo.rollout", "from analysis.tasks import guardrail_check_task"),
        ("config.health", "from analysis.backlog import backlog"),
    ],
)
def test_direction_violations__allowed_imports__not_reported(source: str, code: str) -> None:
    assert direction_violations(imports_of(source, code)) == []


def test_layer_violations__selectors_importing_services__reported() -> None:
    found = imports_of("analysis.selectors", "from analysis.services import snapshot_request")
    assert layer_violations(found) == [
        "analysis/selectors.py:1 imports analysis.services: selectors is below services",
        "analysis/selectors.py:1 imports analysis.services.snapshot_request: "
        "selectors is below services",
    ]


def test_import_time_cycles__only_imports_that_run_at_load__count() -> None:
    modules = {"x.a", "x.b", "x.c"}
    imports = [
        *imports_of("x.a", "from x.b import f"),
        *imports_of("x.b", "import x.c"),
        *imports_of("x.c", "from x.a import g"),
    ]
    assert import_time_cycles(imports, modules) == [["x.a", "x.b", "x.c", "x.a"]]
    lazy = [
        *imports[:-2],
        *imports_of("x.c", "def h():\n    from x.a import g"),
    ]
    assert import_time_cycles(lazy, modules) == []
