import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

MINI_RECIPE = {
    "name": "mini",
    "seed": 0,
    "data": {"name": "synthetic_urban", "clips_per_class": 4, "split_fractions": [0.5, 0.25, 0.25]},
    "window": {"seconds": 1.0},
    "teacher": {"name": "crepe", "variant": "tiny", "hop_ms": 250},
    "reduction": {"method": "pca", "dim": 8},
    "student": {"name": "sea_cnn", "sample_rate": 8000, "n_fft": 128, "hop_length": 160, "n_mels": 32,
                "widths": [4, 8, 8]},
    "loss": {"name": "mse"},
    "train": {"epochs": 2, "batch_size": 8, "lr": 0.003},
}


def pytest_configure(config):
    """No test run may write to the user's real cache, whatever the fixture scope."""
    os.environ["EDGEKD_CACHE_DIR"] = tempfile.mkdtemp(prefix="edgekd-test-cache-")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own teacher-embedding cache; nothing touches ~/.cache."""
    monkeypatch.setenv("EDGEKD_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def preset_cache(tmp_path_factory) -> str:
    """One cache for the tests that only list the presets: their sizes are measured once per run (13 s), not per
    test (the preset cache's own test measures in a fresh one)."""
    return str(tmp_path_factory.mktemp("preset-cache"))


@pytest.fixture
def mini_recipe(tmp_path) -> Path:
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(MINI_RECIPE))
    return path


def data_recipe(data, rate: int = 8000, **window):
    """MINI_RECIPE over `data` (a data config or its dict, or a list of them), its student at `rate`, windows as
    given (1 s default)."""
    from edgekd.recipe import recipe_from_dict

    def plain(config):
        return config if isinstance(config, dict) else config.model_dump(mode="json")

    data = [plain(config) for config in data] if isinstance(data, list) else plain(data)
    return recipe_from_dict(dict(MINI_RECIPE, data=data, window=window or {"seconds": 1.0},
                                 student=dict(MINI_RECIPE["student"], sample_rate=rate)), "test.yaml")


def load_data(data, rate: int = 8000, **window):
    """A dataset decoded into the audio store at `rate` and windowed (as `distill` does, without its checks that
    every split has windows): `.windows`, `.teacher_audio` (= `.student_audio`), `.skipped`."""
    from edgekd.data.domain import catalogues, load_domain_data
    from edgekd.data.store import build_stores

    recipe = data_recipe(data, rate, **window)
    for listed in catalogues(recipe.domain()):
        build_stores(listed, [rate])
    return load_domain_data(recipe.domain(), rate, rate, build=False)


def synthetic_data(per_class: int = 3, rate: int = 8000, **window):
    return load_data({"name": "synthetic_urban", "clips_per_class": per_class, "sample_rate": rate}, rate, **window)


def run_cli(*args: str, cwd: Path | None = None, **env_overrides: str) -> subprocess.CompletedProcess:
    """The real CLI, as a user runs it."""
    env = dict(os.environ, **{"COLUMNS": "200", "PYTHONWARNINGS": "ignore", **env_overrides})
    return subprocess.run([sys.executable, "-m", "edgekd", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def run_cli_here(*args: str, cwd: Path | None = None, **env_overrides: str) -> subprocess.CompletedProcess:
    """The real CLI entry point in this process (no interpreter start-up): for the many short fault cases. Output
    is captured as a user's terminal would get it; the environment and working directory are restored after."""
    import contextlib
    import io

    from edgekd.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_env = sys.argv, os.getcwd(), dict(os.environ)
    sys.argv = ["edgekd", *map(str, args)]
    os.environ.update({"COLUMNS": "200", **env_overrides})
    code = 0
    try:
        if cwd:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


def distill_with_teacher(tmp_path: Path, teacher: dict, **train) -> subprocess.CompletedProcess:
    """`edgekd distill` of the mini recipe with this `teacher:` section (and `train:` keys), into tmp_path/run."""
    recipe = tmp_path / "teacher.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=teacher, **({"train": train} if train else {}))))
    return run_cli_here("distill", recipe, "--out", tmp_path / "run")


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


_ERROR_LABELS = ("error:", "internal error:", "interrupted:")


def one_line(result, code: int, *expected: str) -> None:
    """The contract for a failed command: its exit code, one error line on stderr naming what is expected (after any
    progress lines a long command printed), no traceback."""
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith(_ERROR_LABELS)]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
