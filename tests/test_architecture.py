"""The structure the README's architecture section promises: modules import one way (no cycles, and none from a later
place on the arrow, imports inside functions counted), short functions, package faces that only re-export, and a bad
recipe answered before torch."""

import ast
import importlib
import json
import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml
from conftest import MINI_RECIPE, ROOT

PACKAGE = ROOT / "edgekd"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _import_graph() -> dict[str, set[str]]:
    """Module → edgekd modules it imports anywhere in its text (imports inside functions and TYPE_CHECKING too)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        anchor = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(anchor[: len(anchor) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in (resolve(t) for t in targets if t.split(".")[0] == "edgekd"):
                if target and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    cycles = []
    for start in graph:  # a module that can reach itself through its imports is in a cycle
        seen, stack = set(), list(graph[start])
        while stack:
            module = stack.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                stack.extend(graph[module])
    assert cycles == []


def _places() -> dict[str, int]:
    """Module → its row (place on the arrow) in the README's architecture table; `methods/*.py` is every method."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture"):text.index("What holds it together")]
    rows = [line.split("|")[2] for line in section.splitlines() if line.startswith("| ") and "---" not in line][1:]
    modules, places, globs = _modules(), {}, {}
    for place, row in enumerate(rows):
        for name in re.findall(r"`([\w/*]+)\.py`", row):
            dotted = "edgekd." + name.replace("/", ".")
            if name.endswith("/*"):
                globs[dotted[:-1]] = place
            else:
                assert dotted not in places, f"{name}.py is listed twice"
                places[dotted] = place
    for prefix, place in globs.items():  # what a folder's explicit entries leave
        for module, path in modules.items():
            if module.startswith(prefix) and module not in places and path.name != "__init__.py":
                places[module] = place
    return places


def _through_packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """An import of a package (`from edgekd.data import X`) is an import of what its face re-exports."""
    modules = _modules()

    def real(target: str) -> set[str]:
        if modules[target].name != "__init__.py":
            return {target}
        return {found for inner in graph[target] for found in real(inner)}

    return {module: {found for target in targets for found in real(target)} for module, targets in graph.items()}


def test_every_module_has_a_place_and_no_import_runs_back_up_the_arrow():
    places = _places()
    graph = _through_packages(_import_graph())
    modules = {m for m, path in _modules().items() if path.name != "__init__.py"}
    assert sorted(modules - set(places)) == []
    backwards = sorted(f"{module} -> {target}" for module, targets in graph.items() if module in places
                       for target in targets if places[target] > places[module])
    assert backwards == []


def test_only_the_commands_and_the_run_directory_read_the_composed_recipe():
    """A stage hands each module the section it needs (window, train, probe...), not the whole recipe."""
    graph = _through_packages(_import_graph())
    allowed = ("edgekd.stages.", "edgekd.run_dir", "edgekd.cli", "edgekd.recipe")
    readers = sorted(m for m, targets in graph.items() if "edgekd.recipe" in targets and not m.startswith(allowed))
    assert readers == []


@pytest.mark.parametrize("union, registry", [("edgekd.data.configs:DataConfig", "edgekd.data.registry:DATASETS"),
                                             ("edgekd.teachers.configs:TeacherConfig", "edgekd.teachers.registry:TEACHERS"),
                                             ("edgekd.students.configs:StudentConfig", "edgekd.students.registry:STUDENTS"),
                                             ("edgekd.losses.configs:LossConfig", "edgekd.losses.registry:LOSSES")])
def test_each_config_union_is_exactly_its_registry(union, registry):
    """A recipe section validates against the Union and builds through the registry: a config in one and not the
    other would validate and fail to build, or never validate."""
    def load(name):
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)
    members, entries = typing.get_args(load(union)), load(registry)
    assert sorted(m.__name__ for m in members) == sorted(entry.config.__name__ for entry in entries.values())
    assert all(entry.config.model_fields["name"].default == name for name, entry in entries.items())


def _functions():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path, node, node.end_lineno - node.lineno + 1


def test_functions_are_short_and_distill_reads_as_the_pipeline():
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)" for path, node, lines in _functions()
            if lines > 60]
    assert long == []
    distill = next(lines for path, node, lines in _functions()
                   if node.name == "distill" and path.name == "distill.py")
    assert distill <= 50


def test_package_faces_only_re_export():
    for path in PACKAGE.rglob("__init__.py"):
        for node in ast.parse(path.read_text()).body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            names = isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets)
            assert isinstance(node, (ast.Import, ast.ImportFrom)) or docstring or names, \
                f"{path.relative_to(ROOT)}:{node.lineno} holds logic"


@pytest.mark.parametrize("section, value", [("student", {"name": "sea_cnn", "widthz": [8]}),
                                            ("train", {"epochz": 3}), ("bogus", {})])
def test_a_bad_recipe_is_answered_without_importing_torch(tmp_path, section, value):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, **{section: value})))
    probe = ("import sys; from edgekd.cli import main; sys.argv = ['edgekd', 'distill', sys.argv[1]]\n"
             "try:\n    main()\nexcept SystemExit as done:\n"
             "    print(__import__('json').dumps([done.code, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", probe, str(recipe)], capture_output=True, text=True, cwd=tmp_path)
    code, torch_imported = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 2 and not torch_imported and "unknown key" in done.stderr
