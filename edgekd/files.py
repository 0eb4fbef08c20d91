"""Writing files so that an interruption never leaves a half-written one (write beside, flush, then rename), and a
full disk or read-only folder is one line naming the file, never a library's message about bytes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgekd.errors import EdgekdError, environment_error, first_line


@contextlib.contextmanager
def writing(path: Path):
    """Any OS failure while writing `path` (disk full, read-only, no permission) as one line naming it: libraries
    report it without the path (numpy: "65536 requested and 26560 written")."""
    try:
        yield
    except OSError as err:
        raise environment_error(path, err) from None


@contextlib.contextmanager
def signals_deferred():
    """SIGINT and SIGTERM held back while a few renames that belong together finish, then delivered."""
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in received:
            signal.raise_signal(sig)


def check_writable(path: Path) -> None:
    """Fail now, not after the work, when `path` could not be written (a read-only or missing folder)."""
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass


def atomic_save(path: Path, save: Callable[[Path], Any]) -> Path:
    """`save(tmp)` writes a file beside `path` (its folder made if need be), which then replaces `path` in one
    rename (of several writers, the last wins whole); on any failure or interruption the partial file is removed
    and `path` is left as it was."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: torchrun ranks may write the same file
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            save(tmp)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def remove_stale_temporaries(directory: Path) -> None:
    """Temporary files that killed processes left half-written (SIGKILL cannot be caught): never read, since no
    final name points at them, and removed here so they do not pile up; a running writer's are left alone."""
    for tmp in directory.glob("*.tmp"):
        pid = tmp.suffixes[-2].removeprefix(".") if len(tmp.suffixes) > 1 else ""
        if pid.isdigit() and not alive(int(pid)):
            tmp.unlink(missing_ok=True)


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """`write(handle)` fills an open file, flushed to disk before it replaces `path`."""

    def save(tmp: Path) -> None:
        with open(tmp, mode) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())

    return atomic_save(path, save)


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda handle: handle.write(text), mode="w")


def content_key(value: Any, length: int = 20) -> str:
    """A short name for a JSON-able value that only an equal value shares (cache folders, recipe digests)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2))


def source_digest() -> str:
    """A digest of edgekd's own source, for caches of figures the code computes (its version number stays while it
    changes)."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_json(path: Path, compute: Callable[[], Any], parse: Callable[[Any], Any] = lambda value: value) -> Any:
    """`parse` of `path`'s JSON when it is there and well-formed, else of `compute()`, which is kept at `path` for
    next time."""
    try:
        return parse(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        pass  # not computed yet, or damaged: computed again
    value = compute()
    keep_json(path, value)
    return parse(value)


def keep_json(path: Path, value: Any) -> None:
    """A cache entry written if it can be: a read-only cache costs the next call its time, nothing else."""
    try:
        write_json(path, value)
    except EdgekdError:
        pass


def load_weights(path: Path, what: str, map_location: Any = "cpu") -> Any:
    """A torch file edgekd wrote (tensors and plain containers only: `weights_only`, no pickled code), or one line
    naming the file when it is truncated or not such a file."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated and foreign files
        raise EdgekdError(f"{path}: cannot read the {what} ({first_line(err)}); it is damaged: run `edgekd distill` "
                          "again (--force)") from None
