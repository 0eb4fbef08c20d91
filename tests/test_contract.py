"""The command line's contract, cell by cell: exit codes (0 ok · 1 gate failed · 2 bad input · 3 bug · 130
interrupted), one line per error, and the options and commands no other test reaches."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import MINI_RECIPE, ROOT, run_cli


def _cli_with(patch: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The real CLI with one function replaced first (to provoke a bug or an interrupt where it would happen)."""
    code = f"import sys\n{patch}\nfrom edgekd.cli import main\nsys.argv = ['edgekd', *sys.argv[1:]]\nmain()"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=dict(__import__("os").environ, COLUMNS="200", **env), timeout=120)


BUG = "import edgekd.recipe\ndef boom(*a):\n    raise ZeroDivisionError('boom')\nedgekd.recipe.load_recipe = boom"
INTERRUPT = "import edgekd.recipe\ndef stop(*a):\n    raise KeyboardInterrupt\nedgekd.recipe.load_recipe = stop"


def test_a_bug_is_exit_3_in_one_line_and_edgekd_debug_shows_the_traceback():
    bug = _cli_with(BUG, "distill", "demo")
    assert bug.returncode == 3 and "Traceback" not in bug.stderr
    assert bug.stderr.strip().splitlines() == ["internal error: ZeroDivisionError: boom (EDGEKD_DEBUG=1 shows the "
                                               "traceback)"]
    debug = _cli_with(BUG, "distill", "demo", EDGEKD_DEBUG="1")
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ZeroDivisionError: boom" in debug.stderr


def test_an_interrupt_is_exit_130_with_what_to_do_for_that_command():
    distill = _cli_with(INTERRUPT, "distill", "demo")
    assert distill.returncode == 130 and "--resume" in distill.stderr
    tune = _cli_with(INTERRUPT, "tune", "demo")
    assert tune.returncode == 130 and "finished trials are kept" in tune.stderr and "--resume" not in tune.stderr


@pytest.mark.slow
def test_version_and_usage_errors():
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == "edgekd 0.1.0"
    for args in (["export"], ["export", ".", "--calib-method", "median"], ["frobnicate"], ["profile", "--runs"]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error:"), result.stderr


@pytest.mark.slow
def test_check_with_no_config_here_is_one_line(tmp_path):
    result = run_cli("check", cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "no edgekd.yaml or [tool.edgekd] in pyproject.toml here" in result.stderr


def test_recipes_are_validated_when_listed():
    listed = run_cli("recipes")
    assert listed.returncode == 0 and "demo" in listed.stdout and "crepe" in listed.stdout


@pytest.mark.slow
def test_students_lists_every_family_and_the_sea_presets(preset_cache):
    result = run_cli("students", EDGEKD_CACHE_DIR=preset_cache)
    assert result.returncode == 0, result.stderr
    for name in ("sea_cnn", "transformer", "sea-student-0", "sea-student-3", "mobilenet"):
        assert name in result.stdout
    assert "398.31 k" in result.stdout  # SEA student 3's trainable parameters, as the published .h5 has them


def _mini(tmp_path, name="mini", **sections):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(MINI_RECIPE, name=name, **sections)))
    return path


@pytest.mark.slow
def test_force_replaces_a_run_and_resume_refuses_a_changed_recipe(tmp_path):
    recipe, run = _mini(tmp_path), tmp_path / "run"
    assert run_cli("distill", recipe, "--out", run).returncode == 0
    first = json.loads((run / "metrics.json").read_text())
    changed = _mini(tmp_path, "mini", train=dict(MINI_RECIPE["train"], epochs=1))
    refused = run_cli("distill", changed, "--out", run, "--resume")
    assert refused.returncode == 2 and "the recipe differs" in refused.stderr
    assert json.loads((run / "metrics.json").read_text()) == first  # the finished run is untouched
    forced = run_cli("distill", changed, "--out", run, "--force")
    assert forced.returncode == 0, forced.stderr
    replaced = json.loads((run / "metrics.json").read_text())
    assert replaced["training"]["epochs"] == 1 and first["training"]["epochs"] == 2
    assert len((run / "history.jsonl").read_text().splitlines()) == 1
    assert yaml.safe_load((run / "recipe.yaml").read_text())["train"]["epochs"] == 1


def test_readme_architecture_lists_every_module():
    text = (ROOT / "README.md").read_text().split("## Architecture", 1)[1].split("\n## ", 1)[0]
    for path in sorted((ROOT / "edgekd").rglob("*.py")):
        relative = path.relative_to(ROOT / "edgekd")
        if relative.name == "__init__.py" or relative.parts[0] == "methods" and relative.name != "registry.py":
            continue  # package faces, and the methods (each a recipe key, listed in their own section)
        assert str(relative) in text, f"README's architecture section does not place edgekd/{relative}"
