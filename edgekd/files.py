"""Writing files so that an interruption never leaves a half-written one: write beside, flush, then rename."""

import os
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[object], None], mode: str = "wb") -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, mode) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
