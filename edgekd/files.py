"""Writing files so that an interruption never leaves a half-written one: write beside, flush, then rename."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from edgekd.errors import EdgekdError, first_line


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, mode) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2))


def load_weights(path: Path, what: str, map_location: Any = "cpu") -> Any:
    """A torch file edgekd wrote (tensors and plain containers only: `weights_only`, no pickled code), or one line
    naming the file when it is truncated or not such a file."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated and foreign files
        raise EdgekdError(f"{path}: cannot read the {what} ({first_line(err)}); it is damaged: run `edgekd distill` "
                          "again (--force)") from None
