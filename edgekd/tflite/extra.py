"""The `tflite` extra's libraries, imported when a command needs them: without the extra, one line naming the
install command (exit 2)."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgekd.errors import EdgekdError

INSTALL = "pip install 'edgekd[tflite]'"


def require(module: str, needed_for: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EdgekdError(f"{needed_for} needs {module.split('.')[0]}, from the tflite extra: {INSTALL}") from None


def check_installed(needed_for: str) -> None:
    """Before any work: every library of the extra is there."""
    for module in ("litert_torch", "ai_edge_quantizer", "tflite_micro"):
        require(module, needed_for)
