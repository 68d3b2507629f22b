"""The layer rule of ARCHITECTURE.md, checked on the source: who may import whom.

The import graph is read statically (ast), with every import statement counted,
also those inside functions: a lazy import is still a dependency.
"""

import ast
import pathlib

import pytest

from tf_codistill import config as config_lib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tf_codistill"

# Bottom to top: a module imports modules of its own layer or of layers below it.
LAYERS = (
    ("config", ("tf_codistill.config",)),
    ("utils", ("tf_codistill.utils",)),
    ("core", ("tf_codistill.core",)),
    ("exchange", ("tf_codistill.exchange",)),
    ("models", ("tf_codistill.models",)),
    ("tasks", ("tf_codistill.tasks",)),
    ("runner", ("tf_codistill.runner",)),
    ("cluster", ("tf_codistill.cluster",)),
    ("entry points", ("tf_codistill.train", "tf_codistill.evaluate", "tf_codistill.launch",
                      "tf_codistill.quickstart", "tf_codistill")),
)


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, pathlib.Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: pathlib.Path, modules) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # `from a import b` imports module a.b when b is a module, else a.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules
                     else node.module for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module: str) -> int:
    """The index of the layer whose prefix matches ``module`` most closely."""
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(LAYERS)
               for prefix in prefixes if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} belongs to no layer of ARCHITECTURE.md; add it to LAYERS"
    return max(matches)[1]


def test_every_module_imports_only_its_own_layer_or_below():
    wrong = [f"{module} ({LAYERS[_layer(module)][0]}) imports {imported} "
             f"({LAYERS[_layer(imported)][0]})"
             for module, imports in sorted(_graph().items()) for imported in sorted(imports)
             if _layer(imported) > _layer(module)]
    assert not wrong, "\n".join(wrong)


def test_config_imports_nothing_else_of_the_package():
    outside = {f"{module} imports {imported}" for module, imports in _graph().items()
               if _layer(module) == 0 for imported in imports if _layer(imported) != 0}
    assert not outside, outside


def test_there_is_no_import_cycle():
    graph = _graph()
    cycles = []
    state: dict[str, str] = {}

    def visit(module, path):
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append(" -> ".join(path[path.index(imported):] + [imported]))
            elif imported not in state:
                visit(imported, path + [imported])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    # A package's __init__ importing its own submodules, which import names from it, is
    # how Python packages re-export; only cycles between distinct files count.
    assert not cycles, "\n".join(cycles)


def test_the_check_itself_sees_a_violation(tmp_path):
    modules = {"tf_codistill.config": None, "tf_codistill.runner.train_lib": None}
    source = tmp_path / "bad.py"
    source.write_text("def lazy():\n    from tf_codistill.runner import train_lib\n")
    assert _imports(source, modules) == {"tf_codistill.runner.train_lib"}
    assert _layer("tf_codistill.runner.train_lib") > _layer("tf_codistill.config.layout")


@pytest.mark.parametrize("names, registry", [
    (config_lib.DISTILLATION_LOSSES, "tf_codistill.core.losses:DISTILLATION_LOSSES"),
    (config_lib.OPTIMIZERS, "tf_codistill.runner.optimizers:OPTIMIZERS"),
    (config_lib.PRECISIONS, "tf_codistill.exchange.precision:PRECISIONS"),
    (config_lib.TEACHERS, "tf_codistill.runner.teacher_sources:TEACHER_SOURCES"),
])
def test_the_names_a_knob_accepts_are_the_names_its_registry_implements(names, registry):
    import importlib
    module, attribute = registry.split(":")
    assert sorted(names) == sorted(getattr(importlib.import_module(module), attribute))
