"""The package's light parts stay light, and importing it changes nothing of the user's setup."""

import subprocess
import sys

import pytest

HEAVY = ("transformers", "lightning", "matplotlib")


def _loaded_after(statement: str) -> list[str]:
    code = f"import sys; {statement}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()


@pytest.mark.parametrize("module", ["lvlm_heat", "lvlm_heat.losses", "lvlm_heat.optim", "lvlm_heat.metrics",
                                    "lvlm_heat.config", "lvlm_heat.data", "lvlm_heat.selection", "lvlm_heat.geometry"])
def test_light_modules_load_no_heavy_library(module):
    assert _loaded_after(f"import {module}") == []


def test_public_names_load_on_first_use():
    assert _loaded_after("import lvlm_heat; lvlm_heat.Explainer") == list(HEAVY)


def test_importing_the_package_keeps_the_matplotlib_backend():
    code = ("import matplotlib; matplotlib.use('svg'); import lvlm_heat; from lvlm_heat.reporting import figures; "
            "import lvlm_heat.pipeline; print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "svg"


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere: at its top level, in ``if TYPE_CHECKING`` blocks and
    lazily, inside functions (and ``importlib.import_module`` of a literal name)."""
    import ast
    from pathlib import Path

    root = Path(__file__).parents[1]
    modules = {}
    for path in (root / "lvlm_heat").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in modules.items():
        imported = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
                imported.add(base)
                imported.update(f"{base}.{alias.name}" for alias in node.names)  # from package import module
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                imported.add(node.args[0].value)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def test_the_graph_sees_lazy_imports():
    graph = _import_graph()
    assert "lvlm_heat.reporting.notebook" in graph["lvlm_heat.record"]  # imported inside a method
    assert "lvlm_heat.dataset_run" in graph["lvlm_heat.cli"]


def test_no_import_circle():
    graph, done, circles = _import_graph(), set(), []

    def visit(name: str, path: list[str]) -> None:
        for child in graph[name]:
            if child in path:
                circles.append([*path[path.index(child):], child])
            elif child not in done:
                visit(child, [*path, child])
        done.add(name)

    for name in graph:
        visit(name, [name])
    assert circles == []


def test_no_family_adapter_imports_another():
    graph = _import_graph()
    shared = {"lvlm_heat.adapters", "lvlm_heat.adapters.base", "lvlm_heat.adapters.views",
              "lvlm_heat.adapters.processors", "lvlm_heat.adapters.third_party",
              "lvlm_heat.adapters.third_party.compat", "lvlm_heat.adapters.third_party.upstream"}
    families = {m for m in graph if m.startswith("lvlm_heat.adapters.") and m not in shared}
    assert len(families) >= 4
    for family in families:
        assert not graph[family] & families, family
