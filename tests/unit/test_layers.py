"""The layers of docs/architecture.md hold: no module imports a higher layer, and no modules
import each other in a cycle. Every import counts: at the top of a module, inside a function, and
under `if TYPE_CHECKING:` (a type-only import still ties the two modules together).

The map below is the one place that says which layer a module is in. To fix a failure, move the
import's target down (or the importing code up), or pass what is needed in from app assembly;
do not add an exception here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "ai_gateway"

# The config file's schema is the settings layer: settings.py and the sections it composes, which
# live beside the feature they configure. They import only this layer (pydantic models and their
# validators), never the code that acts on them.
CONFIG_SCHEMA = (
    "cache.config",
    "chains.config",
    "codegen.config",
    "hooks.config",
    "integrations.config",
    "notify.config",
    "rag.config",
    "responses.config",
    "routing.config",
    "security.config",
    "security.jwt_config",
    "security.guardrails_config",
    "security.patterns",
    "streaming.config",
)
# The records the stores persist are infrastructure: plain data with its validation, beside the
# feature that makes them, importing only the base layer (the stores read and write them).
STORED_RECORDS = (
    "usage.records",
    "security.audit",
    "security.keys",
    "prompts.records",
    "rag.records",
    "responses.records",
)
# The layers, lowest first. A module may import its own layer and the layers before it, except the
# emulator, which is a tool apart (see EMULATOR below).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # errors, settings, and the pure helpers that they and everything else use. `model_names` is the
    # rule for a model name (the config file and request validation share it); `redaction` is one
    # pure function (scrub secrets out of text); the package root holds the version.
    ("base", ("ai_gateway", "errors", "settings", "model_names", "redaction", *CONFIG_SCHEMA)),
    # What features build on. `model_registry` is read-only data about upstream models (loaded from
    # data/models.yaml), a source that routing, usage, providers and the API read, like a store.
    (
        "infrastructure",
        (
            *("stores", "observability", "schemas", "streaming", "model_registry", "timers"),
            *STORED_RECORDS,
        ),
    ),
    # The features, and the request's facts that they share (`request_info`: it names routing's
    # Trace and security's Principal, and admission and usage recording fill it in).
    (
        "features",
        (
            "request_info",
            *("routing", "providers", "security", "usage", "cache", "prompts", "rag"),
            *("notify", "hooks", "integrations", "codegen", "chains", "messages"),
            "responses",
        ),
    ),
    ("pipeline", ("pipeline",)),
    ("api", ("api",)),
    # Assembly: the command line and the app factory wire the layers together.
    (
        "assembly",
        (
            *("app", "app_chains", "app_codegen", "app_context", "app_prompts", "app_rag"),
            "app_security",
            *("app_hooks", "app_cache", "app_analytics"),
            "app_notify",
            "app_responses",
            "app_errors",
            "cli",
            "cli_banner",
            *("cli_keys", "cli_migrate", "cli_prompts", "demo", "serving", "__main__"),
        ),
    ),
)
# The provider emulator is a separate tool (`ai-gateway emulate`, the tests' upstream): it may
# import only the base layer, and only assembly may import it.
EMULATOR = ("emulator", ("emulator",))
ORDER = ("base", "infrastructure", "features", "pipeline", "api", "assembly")


def layer_of(module: str) -> str:
    """The layer of a dotted module name inside the package (`ai_gateway.api.chat` -> `api`)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    inner = ".".join(parts[1:3])
    for name, tops in (*LAYERS, EMULATOR):
        if inner in tops or top in tops:
            return name
    raise AssertionError(
        f"{module} is in no layer: add {top!r} to LAYERS in tests/unit/test_layers.py"
    )


def may_import(importer: str, imported: str) -> bool:
    if importer == imported:
        return True
    if "emulator" in (importer, imported):
        return imported == "base" or importer == "assembly"
    return ORDER.index(imported) <= ORDER.index(importer)


def module_files(src: Path = SRC) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its `__init__.py`)."""
    found: dict[str, Path] = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: Iterable[str]) -> set[str]:
    """The package's modules that `module` imports, anywhere in its source."""
    names = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod.
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in names else base
                for alias in node.names
            )
    return {name for name in found if name in names and name != module}


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    files = module_files(src)
    return {module: imports_of(module, path, files) for module, path in files.items()}


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """One line per import that goes to a higher layer (or into or out of the emulator)."""
    problems = []
    for importer in sorted(graph):
        for imported in sorted(graph[importer]):
            low, high = layer_of(importer), layer_of(imported)
            if not may_import(low, high):
                problems.append(f"{importer} ({low}) imports {imported} ({high})")
    return problems


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import cycles, each as a path `a -> b -> ... -> a` (one per strongly connected group
    of modules, found with Tarjan's algorithm, so each tangle is reported once)."""
    edges = {module: sorted(targets) for module, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in edges.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    return [_cycle_path(group, edges) for group in groups]


def _cycle_path(group: list[str], edges: Mapping[str, list[str]]) -> list[str]:
    """The shortest way from the group's first module back to itself, inside the group."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in edges.get(module, ()):
                if target == start:
                    return [*paths[module], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - Tarjan found one


def test_the_real_graph_is_read() -> None:
    """Guards the checks below against passing on an empty graph (a wrong path, say)."""
    graph = import_graph()
    assert len(graph) > 100
    assert "ai_gateway.pipeline.chains" in graph["ai_gateway.api.chat"]


def test_every_module_is_in_a_layer() -> None:
    for module in module_files():
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    problems = upward_imports(import_graph())
    assert not problems, (
        "imports that go up the layers (docs/architecture.md, 'Layers'); move the imported "
        "code down, or do the wiring in app assembly:\n  " + "\n  ".join(problems)
    )


def test_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, (
        "import cycles (TYPE_CHECKING imports count); break each at the import that goes the "
        "wrong way:\n  " + "\n  ".join(" -> ".join(path) for path in found)
    )


# -- the checker itself, on small made-up graphs -----------------------------------------------


def test_the_checker_sees_imports_everywhere(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    (package / "api").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "api" / "__init__.py").write_text("")
    (package / "errors.py").write_text("")
    (package / "settings.py").write_text("")
    (package / "api" / "health.py").write_text("")
    (package / "api" / "chat.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from . import health\n"
        "if TYPE_CHECKING:\n"
        "    from ai_gateway.settings import Config\n"
        "def f():\n"
        "    import ai_gateway.errors\n"
    )
    graph = import_graph(tmp_path)
    assert graph["ai_gateway.api.chat"] == {
        "ai_gateway.api.health",
        "ai_gateway.settings",
        "ai_gateway.errors",
    }


def test_the_checker_reports_an_upward_import() -> None:
    graph = {
        "ai_gateway.routing.breaker": {"ai_gateway.api.health", "ai_gateway.errors"},
        "ai_gateway.api.health": {"ai_gateway.observability.metrics"},
        "ai_gateway.emulator.app": {"ai_gateway.stores.redis"},
        "ai_gateway.demo": {"ai_gateway.emulator.app"},
    }
    assert upward_imports(graph) == [
        "ai_gateway.emulator.app (emulator) imports ai_gateway.stores.redis (infrastructure)",
        "ai_gateway.routing.breaker (features) imports ai_gateway.api.health (api)",
    ]


def test_the_checker_reports_a_cycle_with_its_path() -> None:
    graph = {
        "ai_gateway.settings": {"ai_gateway.security.config"},
        "ai_gateway.security.config": {"ai_gateway.observability.logging"},
        "ai_gateway.observability.logging": {"ai_gateway.settings", "ai_gateway.errors"},
        "ai_gateway.errors": set(),
        "ai_gateway.api.a": {"ai_gateway.api.b"},
        "ai_gateway.api.b": {"ai_gateway.api.a"},
    }
    assert cycles(graph) == [
        ["ai_gateway.api.a", "ai_gateway.api.b", "ai_gateway.api.a"],
        [
            "ai_gateway.observability.logging",
            "ai_gateway.settings",
            "ai_gateway.security.config",
            "ai_gateway.observability.logging",
        ],
    ]
