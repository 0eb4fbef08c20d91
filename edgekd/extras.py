"""Optional extras (pyproject's optional dependencies): their libraries are imported when a command needs them;
without the extra, one line naming the install command (exit 2)."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgekd.errors import EdgekdError

# what each extra must provide, checked before any work starts
EXTRAS = {"tflite": ("litert_torch", "ai_edge_quantizer", "tflite_micro"), "executorch": ("executorch", "torchao")}


def install_command(extra: str) -> str:
    return f"pip install 'edgekd[{extra}]'"


def require(module: str, needed_for: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise EdgekdError(f"{needed_for} needs {module.split('.')[0]}, from the {extra} extra: "
                          f"{install_command(extra)}") from None


def check_installed(extra: str, needed_for: str) -> None:
    """Before any work: every library of the extra is there."""
    for module in EXTRAS[extra]:
        require(module, needed_for, extra)
