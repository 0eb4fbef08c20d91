"""The audio store: every clip decoded, screened, mixed to mono and resampled once per rate, then kept on disk as
int16 PCM shards that every stage reads windows from by position, so memory does not grow with the hours of audio.

Layout: `<cache root>/audio/<key>/` (key: the dataset's identity and the rate) holds shards, each a plain int16
`.npy` of clips back to back (any tool can memory-map it) and a `.json` index written after it, atomically: per clip
its key (file), the file's signature (size, modification time), offset, length, scale and a content digest; the
files screened out, with why; the array's sha256. A killed build keeps every finished shard; a changed file is
decoded again into a new shard (only that clip); a damaged shard fails its checksum, is removed, and its clips are
decoded again. A build holds an exclusive lock on each of its stores (`build.lock`): a second build of the same
store, started beside it, waits and then decodes only what the first left missing, instead of storing it again.

int16 with a per-clip scale (the clip's peak ↦ 32767): two bytes a sample like float16, but a quantisation floor
about 98 dB under each clip's own peak for quiet and loud files alike (float16 keeps about 66 dB relative to each
sample); benchmarks/scale.py measures that the teacher and the trained student cannot tell it from float32.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.data.audio import resample
from edgekd.data.sources import BadAudio, Catalogue, Source
from edgekd.files import atomic_write, content_key, remove_stale_temporaries, write_text
from edgekd.paths import cache_root

SHARD_SAMPLES = 1 << 24  # 32 MB of int16 per shard (17 min at 16 kHz): the unit of progress a killed build keeps
_PEAK = 32767


@dataclass(frozen=True)
class StoredClip:
    shard: str  # the shard's file name
    offset: int  # first sample within the shard
    length: int  # samples
    scale: float  # float value of one int16 step
    digest: str  # of the stored samples and scale: the teacher cache's row keys derive from it


@dataclass
class AudioStore:
    directory: Path
    rate: int
    clips: dict[tuple[str, str], StoredClip] = field(default_factory=dict)  # (key, signature) → clip
    screened: dict[tuple[str, str], str] = field(default_factory=dict)  # (key, signature) → why it was left out
    discarded: list[str] = field(default_factory=list)  # damaged shards removed (their clips decoded again)
    headers: dict[str, int] = field(default_factory=dict)  # shard → byte offset of its first sample
    size_bytes: int = 0

    def has(self, key: tuple[str, str]) -> bool:
        return key in self.clips or key in self.screened

    def read(self, clip: StoredClip, start: int, length: int) -> np.ndarray:
        """`length` float32 samples of `clip` from `start`, zero-padded past its end. A positioned read, not a
        memory map: mapped pages would count toward this process's resident memory for as long as it runs."""
        out = np.zeros(length, np.float32)
        stop = min(start + length, clip.length)
        if stop > start:
            pcm = np.fromfile(self.directory / clip.shard, dtype=np.int16, count=stop - start,
                              offset=self.headers[clip.shard] + 2 * (clip.offset + start))
            out[: stop - start] = pcm * np.float32(clip.scale)
        return out


def store_directory(identity: dict, rate: int) -> Path:
    key = content_key({"audio": identity, "rate": rate})
    return cache_root() / "audio" / key


def signature(source: Source) -> str:
    """What says a file changed: its size and modification time (generated audio never changes)."""
    if source.path is None:
        return "generated"
    try:
        stat = source.path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def open_store(directory: Path, rate: int, verify: bool = True) -> AudioStore:
    """The clips of every intact shard; a damaged shard is listed in `discarded` (the builder removes it)."""
    store = AudioStore(directory, rate)
    for index_path in sorted(directory.glob("shard-*.json")):
        array_path = index_path.with_suffix(".npy")
        try:
            index = json.loads(index_path.read_text())
            header, samples = _npy_layout(array_path)
            if samples != index["samples"] or (verify and _sha256(array_path) != index["sha256"]):
                raise ValueError("size or checksum mismatch")
            clips = {(c["key"], c["signature"]): StoredClip(array_path.name, c["offset"], c["length"], c["scale"],
                                                            c["digest"]) for c in index["clips"]}
            screened = {(s["key"], s["signature"]): s["reason"] for s in index["screened"]}
        except (ValueError, KeyError, TypeError, OSError):
            store.discarded.append(array_path.name)
            continue
        store.clips |= clips
        store.screened |= screened
        store.headers[array_path.name] = header
        store.size_bytes += array_path.stat().st_size + index_path.stat().st_size
    return store


def _npy_layout(path: Path) -> tuple[int, int]:
    """(byte offset of the data, samples) of an int16 .npy shard."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(handle)
        if dtype != np.int16 or len(shape) != 1 or fortran:
            raise ValueError("not an int16 shard")
        return handle.tell(), shape[0]


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


class _ShardWriter:
    """Buffers decoded clips and writes a shard whenever SHARD_SAMPLES are waiting (and at the end)."""

    def __init__(self, directory: Path, tag: str):
        self.directory, self.tag = directory, tag
        self.chunks: list[np.ndarray] = []
        self.clips: list[dict] = []
        self.screened: list[dict] = []
        self.samples = 0

    def add(self, key: tuple[str, str], audio: np.ndarray) -> None:
        peak = float(np.abs(audio).max(initial=0.0))
        scale = float(np.float32(peak / _PEAK)) if peak > 0 else 1.0
        pcm = np.clip(np.round(audio / scale), -_PEAK, _PEAK).astype(np.int16)
        digest = hashlib.blake2b(pcm.tobytes() + np.float32(scale).tobytes(), digest_size=16).hexdigest()
        self.clips.append({"key": key[0], "signature": key[1], "offset": self.samples, "length": len(pcm),
                           "scale": scale, "digest": digest})
        self.chunks.append(pcm)
        self.samples += len(pcm)
        if self.samples >= SHARD_SAMPLES:
            self.flush()

    def screen(self, key: tuple[str, str], reason: str) -> None:
        self.screened.append({"key": key[0], "signature": key[1], "reason": reason})

    def flush(self) -> None:
        if not self.clips and not self.screened:
            return
        stem = f"shard-{time.time_ns()}-{self.tag}"
        array_path = self.directory / f"{stem}.npy"
        pcm = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        atomic_write(array_path, lambda handle: np.save(handle, pcm))
        index = {"samples": len(pcm), "sha256": _sha256(array_path), "clips": self.clips, "screened": self.screened}
        write_text(self.directory / f"{stem}.json", json.dumps(index))
        self.chunks, self.clips, self.screened, self.samples = [], [], [], 0


def build_stores(catalogue: Catalogue, rates: list[int], share: tuple[int, int] = (0, 1),
                 on_progress: Callable[[int, int], None] | None = None,
                 barrier: Callable[[], None] = lambda: None) -> list[str]:
    """Decode every clip missing from the store of each rate (this process's `share` (rank, world) of them) and
    write it there; returns the damaged shards removed. Decoding happens once per clip for all rates. Rank 0 holds
    the stores' locks for the whole build; `barrier` (under torchrun, across ranks) is called once it holds them, so
    that no rank lists a store another build is writing, and once every rank has listed, before any writes or
    removes; it returns once every rank has written its shards."""
    directories = [store_directory(catalogue.identity, rate) for rate in rates]
    for directory, rate in zip(directories, rates):
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / "store.json"
        if not meta.is_file():
            write_text(meta, json.dumps({"identity": catalogue.identity, "rate": rate}, indent=1))
    with _locked(directories if share[0] == 0 else []):
        barrier()
        discarded = _build(catalogue, directories, rates, share, on_progress, barrier)
        barrier()  # every rank's shards are written before the locks go
    return discarded


@contextlib.contextmanager
def _locked(directories: list[Path]) -> Iterator[None]:
    """Exclusive flocks on the directories' `build.lock`, taken in sorted order (two builds of overlapping rates
    cannot deadlock) and released by the kernel if the process dies."""
    with contextlib.ExitStack() as stack:
        for directory in sorted(directories):
            handle = stack.enter_context(open(directory / "build.lock", "a"))
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _build(catalogue: Catalogue, directories: list[Path], rates: list[int], share: tuple[int, int],
           on_progress: Callable[[int, int], None] | None, barrier: Callable[[], None]) -> list[str]:
    stores = []
    for directory, rate in zip(directories, rates):
        remove_stale_temporaries(directory)
        stores.append(open_store(directory, rate))
    keys = {source.key: (source.key, signature(source)) for source in catalogue.sources}
    missing = [s for s in catalogue.sources if not all(store.has(keys[s.key]) for store in stores)]
    barrier()
    discarded = [name for store in stores for name in store.discarded]
    if share[0] == 0:
        for store in stores:
            for name in store.discarded:  # a damaged shard goes, so its clips are not read and skipped forever
                for part in (store.directory / name, (store.directory / name).with_suffix(".json")):
                    part.unlink(missing_ok=True)
    mine = missing[share[0] :: share[1]]
    writers = [_ShardWriter(store.directory, f"{os.getpid()}-{share[0]}") for store in stores]
    for done, (source, decoded) in enumerate(catalogue.decode(mine), 1):
        for store, writer in zip(stores, writers):
            if store.has(keys[source.key]):
                continue
            if isinstance(decoded, BadAudio):
                writer.screen(keys[source.key], str(decoded))
            else:
                audio, native_rate = decoded
                writer.add(keys[source.key], resample(audio, native_rate, store.rate))
        if on_progress:
            on_progress(done, len(mine))
    for writer in writers:
        writer.flush()
    return discarded
