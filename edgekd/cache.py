"""Teacher-embedding cache: teacher inference runs once per (teacher, window) and is reused by every student
trained on it (the offline-teacher idea: compute once, train many).

Layout: `<cache root>/teacher/<teacher key>/` holds `teacher.json` (identity) and shards, each a float16 `.npy`
(memory-mapped on read) with a `.json` index of its row keys and checksum. Rows are keyed by a content hash of each
window, so a changed audio file invalidates only its own rows. A shard's index is written after its array, atomically:
a killed run keeps every finished shard and the next run computes only what is missing, in the same batches.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgekd.data.windows import WindowAudio, Windows
from edgekd.errors import EdgekdError
from edgekd.files import atomic_write, content_key, remove_stale_temporaries, write_text
from edgekd.paths import cache_root
from edgekd.runtime import barrier, rank_and_world
from edgekd.teachers.base import Teacher

SHARD_ROWS = 256  # rows per shard: the unit of progress a killed run keeps
_FLOAT16_MAX = 65000.0


class TeacherRows:
    """Every window's teacher embedding, read from the cache shards on request: `rows[index]` is a float32 array
    (index: a row, a slice or row numbers), like an (windows, dim) array that is never all in memory. A (windows,
    dim) float32 array would be 2 kB a window for a 512-dimensional teacher: 15 MB per hour of audio at a 0.5 s
    hop, 15 GB for 1,000 hours."""

    dtype = np.dtype(np.float32)  # as read (shards hold float16 where the values fit)

    def __init__(self, shards: list[np.memmap], shard_of: np.ndarray, position: np.ndarray, dim: int):
        # a shard's file, where its rows begin and their dtype; then per window its shard and row within it
        self.shards = [(Path(shard.filename), shard.offset, shard.dtype) for shard in shards]
        self.shard_of, self.position, self.dim = shard_of, position, dim

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.shard_of), self.dim

    def __len__(self) -> int:
        return len(self.shard_of)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:  # numpy functions given every row read them all
        return self[:] if dtype is None else self[:].astype(dtype)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[np.asarray([index])][0]
        rows = np.arange(len(self))[index]
        out = np.empty((len(rows), self.dim), np.float32)
        shard_of, position = self.shard_of[rows], self.position[rows]
        for shard in np.unique(shard_of):  # one read per shard: the span of its rows asked for
            mine = np.flatnonzero(shard_of == shard)
            first, last = position[mine].min(), position[mine].max()
            path, offset, dtype = self.shards[shard]
            span = np.fromfile(path, dtype=dtype, count=(last - first + 1) * self.dim,
                               offset=offset + int(first) * self.dim * dtype.itemsize).reshape(-1, self.dim)
            out[mine] = span[position[mine] - first]
        return out


@dataclass
class CachedEmbeddings:
    embeddings: TeacherRows | np.ndarray  # (windows, teacher_dim) float32 rows (precomputed: an array)
    directory: Path | None
    computed: int  # rows computed now (0: everything came from the cache)
    reused: int
    discarded: list[str] = field(default_factory=list)  # damaged shards removed (their rows were recomputed)

    @property
    def hit(self) -> bool:
        return self.computed == 0


def teacher_directory(identity: dict) -> Path:
    key = content_key(identity)
    return cache_root() / "teacher" / key


def _checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_shards(directory: Path, verify: bool = True) -> tuple[dict[str, tuple[np.ndarray, int]], list[str]]:
    """Row key → (shard array, row). Shards failing their checksum are reported and skipped."""
    rows: dict[str, tuple[np.ndarray, int]] = {}
    damaged = []
    for index_path in sorted(directory.glob("shard-*.json")):
        array_path = index_path.with_suffix(".npy")
        try:
            index = json.loads(index_path.read_text())
            if not array_path.is_file() or (verify and _checksum(array_path) != index["sha256"]):
                raise ValueError("checksum mismatch")
            array = np.load(array_path, mmap_mode="r")
            if array.shape[0] != len(index["keys"]):
                raise ValueError("row count mismatch")
        except (ValueError, KeyError, OSError):
            damaged.append(array_path.name)
            continue
        for row, key in enumerate(index["keys"]):
            rows[key] = (array, row)
    return rows, damaged


def _write_shard(directory: Path, keys: list[str], embeddings: np.ndarray) -> None:
    dtype = np.float16 if np.abs(embeddings).max(initial=0) < _FLOAT16_MAX else np.float32
    stem = f"shard-{time.time_ns():020d}"
    array_path = directory / f"{stem}.npy"
    atomic_write(array_path, lambda h: np.save(h, embeddings.astype(dtype)))
    index = {"keys": keys, "sha256": _checksum(array_path), "dtype": str(np.dtype(dtype))}
    write_text(directory / f"{stem}.json", json.dumps(index))


def teacher_embeddings(
    teacher: Teacher,
    windows: Windows,
    audio: WindowAudio,
    device: torch.device,
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> CachedEmbeddings:
    """Every window's teacher embedding: cached rows are read, missing rows computed from `audio` (the windows at
    the teacher's rate, streamed from the audio store) and cached."""
    known = teacher.known_embeddings(windows.clip_ids, windows.starts)
    if known is not None:  # precomputed embeddings are their own cache
        return CachedEmbeddings(known, None, 0, len(windows))
    identity = teacher.identity()
    directory = teacher_directory(identity)
    meta = directory / "teacher.json"
    if not meta.is_file():
        write_text(meta, json.dumps({"identity": identity, "dim": teacher.dim}, indent=1))
    remove_stale_temporaries(directory)
    keys = audio.row_keys()
    cached, damaged = read_shards(directory)
    missing = [i for i, key in enumerate(keys) if key not in cached]
    rank, world = rank_and_world()
    barrier()  # every rank plans from the same listing before any rank writes
    if rank == 0:  # a damaged shard's rows are recomputed: the shard goes, so it is not read and skipped forever
        for name in damaged:
            for part in (directory / name, (directory / name).with_suffix(".json")):
                part.unlink(missing_ok=True)
    if missing:
        teacher.to(device)
        done = len(keys) - len(missing)
        # under torchrun each rank computes every world-th shard; shards are files, so no gather is needed
        for start in range(rank * SHARD_ROWS, len(missing), world * SHARD_ROWS):
            rows = missing[start : start + SHARD_ROWS]
            chunks = []
            for batch in _loader(audio, rows, batch_size, device):
                chunks.append(teacher.embed(batch.to(device, non_blocking=True)).float().cpu().numpy())
                if on_progress:
                    on_progress(done + sum(len(c) for c in chunks), len(keys))
            embeddings = np.concatenate(chunks)
            bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
            if len(bad):  # never cache them: a later run would reuse them
                window = rows[bad[0]]
                raise EdgekdError(f"teacher '{identity['teacher']}' gave non-finite embeddings for {len(bad)} of "
                                  f"{len(rows)} windows (first: clip '{windows.clip_ids[window]}' at "
                                  f"{windows.starts[window]:g} s); check the teacher's weights and input rate")
            _write_shard(directory, [keys[i] for i in rows], embeddings)
            done += len(rows)
        barrier()
        cached, _ = read_shards(directory, verify=False)
    return CachedEmbeddings(_rows(cached, keys, teacher.dim), directory, computed=len(missing),
                            reused=len(keys) - len(missing), discarded=damaged)


def _rows(cached: dict[str, tuple[np.memmap, int]], keys: list[str], dim: int) -> TeacherRows:
    shards: dict[int, int] = {}  # id of a shard's array → its number
    located = [(shards.setdefault(id(cached[key][0]), len(shards)), cached[key][1]) for key in keys]
    arrays = {id(array): array for array, _ in cached.values()}
    shard_of, position = np.asarray(located, np.int32).reshape(-1, 2).T
    return TeacherRows([arrays[ident] for ident in shards], shard_of.copy(), position.copy(), dim)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, audio: WindowAudio, rows: list[int]):
        self.audio, self.rows = audio, rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.audio[self.rows[index]])


def _loader(audio: WindowAudio, rows: list[int], batch_size: int, device: torch.device):
    """Batches in row order (so a resumed run batches exactly as an uninterrupted one). On CUDA, worker processes
    read windows from the store while the GPU runs the teacher, into pinned memory; on the CPU the teacher needs
    every core."""
    workers = min(4, os.cpu_count() or 1) if device.type == "cuda" else 0
    return torch.utils.data.DataLoader(_Rows(audio, rows), batch_size=batch_size, shuffle=False,
                                       num_workers=workers, pin_memory=device.type == "cuda")


@dataclass
class CacheEntry:
    key: str
    directory: Path
    identity: dict
    rows: int
    dim: int
    size_bytes: int
    damaged: list[str]


def _cache_folders(root: Path) -> list[Path]:
    """The caches under `root`: its folders, never a link (which may lead into a folder of the user's own)."""
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.is_symlink()) if root.is_dir() else []


def list_caches(verify: bool = False) -> list[CacheEntry]:
    root = cache_root() / "teacher"
    entries = []
    for directory in _cache_folders(root):
        meta_path = directory / "teacher.json"
        try:
            meta = json.loads(meta_path.read_text())
            meta = meta if isinstance(meta, dict) and isinstance(meta.get("identity"), dict) else None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        if meta is None:  # a missing or damaged identity: listed as unknown, never guessed
            meta = {"identity": {}, "dim": 0}
        rows, damaged = read_shards(directory, verify=verify)
        size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
        entries.append(CacheEntry(directory.name, directory, meta["identity"], len(rows), meta.get("dim", 0), size,
                                  damaged))
    return entries


def remove_cache(key: str) -> Path:
    """Delete one cache folder; `key` must be one of the keys `edgekd cache ls` lists (a name, never a path)."""
    root = cache_root() / "teacher"
    if key not in {path.name for path in _cache_folders(root)}:
        raise EdgekdError(f"no teacher cache '{key}' under {root}; give a key from `edgekd cache ls`")
    shutil.rmtree(root / key)
    return root / key
