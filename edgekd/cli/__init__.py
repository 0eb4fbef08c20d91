"""The `edgekd` command line: one module per command (or group of commands), each registering on the one Typer app
of `cli/base.py`, imported here in the order `edgekd --help` lists them; every command parses, calls one stage and
renders."""
# isort: skip_file

from edgekd.cli import distill, evaluate, tune, search, export, deploy, profile, listings, data, cache  # noqa: F401 - register
from edgekd.cli.base import app, main, run

__all__ = ["app", "main", "run"]
