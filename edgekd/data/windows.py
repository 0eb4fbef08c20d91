"""What a dataset hands the rest of the pipeline: fixed-length windows as rows of an index (clip, start), never
copies of the audio, so overlapping windows cost nothing; their audio at any rate is read from the store per batch."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edgekd.data.store import AudioStore, StoredClip

SPLITS = ("train", "val", "test")


@dataclass
class Clips:
    """The usable clips of a dataset, in its own order, with their metadata and their length in seconds."""

    ids: list[str]
    seconds: np.ndarray
    labels: np.ndarray | None  # class index per clip, (clips, tags) 0/1 for multi-label, -1 for an unlabelled clip
    # beside labelled ones; None when no clip has a label
    class_names: list[str]
    splits: np.ndarray  # one of SPLITS per clip
    groups: list[str] | None = None  # sensor, source or fold of each clip


@dataclass
class Windows:
    clips: Clips
    clip: np.ndarray  # index into `clips` of each window
    starts: np.ndarray  # window start in seconds within its clip
    seconds: float  # window length

    def __len__(self) -> int:
        return len(self.clip)

    @property
    def labels(self) -> np.ndarray | None:
        return None if self.clips.labels is None else self.clips.labels[self.clip]

    @property
    def class_names(self) -> list[str]:
        return self.clips.class_names

    @property
    def splits(self) -> np.ndarray:
        return self.clips.splits[self.clip]

    @property
    def clip_ids(self) -> np.ndarray:
        return np.asarray(self.clips.ids)[self.clip]

    @property
    def groups(self) -> np.ndarray | None:
        return None if self.clips.groups is None else np.asarray(self.clips.groups)[self.clip]

    def split_index(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    @property
    def fully_labelled(self) -> bool:
        return self.clips.labels is not None and bool(labelled(self.clips.labels).all())

    def labelled_rows(self, rows: np.ndarray) -> np.ndarray:
        """Those of `rows` whose clip has a label (data may list unlabelled audio beside a labelled set)."""
        return rows[labelled(self.labels[rows])] if self.labels is not None else rows[:0]


def labelled(labels: np.ndarray) -> np.ndarray:
    """Which rows carry a label: unlabelled clips beside labelled ones have label -1 (a row of -1 for tags)."""
    return (labels if labels.ndim == 1 else labels[:, 0]) >= 0


def make_windows(clips: Clips, seconds: float, hop_seconds: float | None, min_fraction: float,
                 rate: int) -> tuple[Windows, list[dict]]:
    """Cut every clip into windows of `seconds` (counted in samples at `rate`), zero-padding the last one, which is
    kept only when at least `min_fraction` of it is audio. A clip shorter than that gives no window and is returned
    as skipped (a 0.1 s click would otherwise be a window of 90 % zeros)."""
    length = int(round(seconds * rate))
    hop = int(round((hop_seconds or seconds) * rate))
    least = int(np.ceil(min_fraction * length))
    clip_rows, starts, skipped = [], [], []
    for index, clip_seconds in enumerate(clips.seconds):
        samples = int(round(clip_seconds * rate))
        if samples < least:
            skipped.append({"path": clips.ids[index], "reason": f"shorter than window.min_fraction {min_fraction:g} "
                            f"of a window ({clip_seconds:.3g} s)"})
            continue
        count = 1 + max(0, int(np.ceil((samples - length) / hop)))
        while count > 1 and samples - (count - 1) * hop < least:
            count -= 1  # a last window mostly of padding
        clip_rows.append(np.full(count, index, np.int32))
        starts.append(np.arange(count) * hop / rate)
    concatenate = (lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype))
    return Windows(clips, concatenate(clip_rows, np.int32), concatenate(starts, np.float64), seconds), skipped


class WindowAudio:
    """The windows' audio at one rate, read from that rate's stores (one per dataset) on request: `audio[rows]` is a
    (rows, samples) float32 array, `audio[row]` one window. Only what is asked for is ever in memory."""

    def __init__(self, windows: Windows, rate: int, stores: list[AudioStore], store_of: np.ndarray,
                 stored: list[StoredClip]):
        self.stores, self.store_of, self.stored = stores, store_of, stored  # clip i is stored[i] in stores[store_of[i]]
        self.sample_rate = rate
        self.samples = int(round(windows.seconds * rate))
        self.clip = windows.clip
        self.starts = np.round(windows.starts * rate).astype(np.int64)

    def __len__(self) -> int:
        return len(self.clip)

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            clip = self.clip[rows]
            return self.stores[self.store_of[clip]].read(self.stored[clip], int(self.starts[rows]), self.samples)
        rows = np.arange(len(self))[rows]
        out = np.empty((len(rows), self.samples), np.float32)
        for position, row in enumerate(rows):
            out[position] = self[row]
        return out

    def row_keys(self) -> list[str]:
        """One key per window from its clip's content digest, start, length and rate: the teacher-embedding cache's
        row key, so a changed file invalidates only its own windows' rows."""
        return [hashlib.blake2b(f"{self.stored[clip].digest}:{start}:{self.samples}:{self.sample_rate}".encode(),
                                digest_size=16).hexdigest() for clip, start in zip(self.clip, self.starts)]
