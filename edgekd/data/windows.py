"""What a dataset hands the rest of the pipeline: clips, then fixed-length windows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "val", "test")


@dataclass
class Clips:
    ids: list[str]
    audio: list[np.ndarray]  # mono float32 at sample_rate, one array per clip
    sample_rate: int
    labels: np.ndarray | None  # class index per clip, (clips, tags) 0/1 for multi-label, None when unlabelled
    class_names: list[str]
    splits: np.ndarray  # one of SPLITS per clip
    groups: list[str] | None = None  # sensor, source or fold of each clip
    skipped: list[dict] = field(default_factory=list)  # files left out, with the reason


@dataclass
class Windows:
    clip_ids: list[str]
    starts: np.ndarray  # window start in seconds within its clip
    audio: np.ndarray  # (n, samples) float32 at sample_rate
    sample_rate: int
    labels: np.ndarray | None
    class_names: list[str]
    splits: np.ndarray
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.clip_ids)

    def split_index(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def row_keys(self) -> list[str]:
        """One content hash per window (audio and rate): the teacher-embedding cache's row key, so a changed file
        invalidates only its own windows' rows."""
        rate = str(self.sample_rate).encode()
        return [hashlib.blake2b(rate + np.ascontiguousarray(row).tobytes(), digest_size=16).hexdigest()
                for row in self.audio]


def make_windows(clips: Clips, seconds: float, hop_seconds: float | None, min_fraction: float = 0.5) -> Windows:
    """Cut every clip into windows of `seconds`, zero-padding the last one, which is kept only when at least
    `min_fraction` of it is audio; a clip shorter than that gives no window and is listed in `clips.skipped` (a
    0.1 s click would otherwise be a window of 90 % zeros)."""
    length = int(round(seconds * clips.sample_rate))
    hop = int(round((hop_seconds or seconds) * clips.sample_rate))
    least = int(np.ceil(min_fraction * length))
    ids, starts, chunks, labels, splits, groups = [], [], [], [], [], []
    for index, (clip_id, audio) in enumerate(zip(clips.ids, clips.audio)):
        if len(audio) < least:
            clips.skipped.append({"path": clip_id, "reason": f"shorter than window.min_fraction {min_fraction:g} of "
                                  f"a window ({len(audio) / clips.sample_rate:.3g} s)"})
            continue
        count = 1 + max(0, int(np.ceil((len(audio) - length) / hop)))
        while count > 1 and len(audio) - (count - 1) * hop < least:
            count -= 1  # a last window mostly of padding
        for w in range(count):
            chunk = audio[w * hop : w * hop + length]
            if len(chunk) < length:
                chunk = np.pad(chunk, (0, length - len(chunk)))
            ids.append(clip_id)
            starts.append(w * hop / clips.sample_rate)
            chunks.append(chunk.astype(np.float32, copy=False))
            splits.append(clips.splits[index])
            groups.append(clips.groups[index] if clips.groups else "")
            if clips.labels is not None:
                labels.append(clips.labels[index])
    return Windows(
        clip_ids=ids,
        starts=np.asarray(starts, dtype=np.float64),
        audio=np.stack(chunks) if chunks else np.zeros((0, length), np.float32),
        sample_rate=clips.sample_rate,
        labels=np.asarray(labels, dtype=np.int64) if clips.labels is not None else None,
        class_names=clips.class_names,
        splits=np.asarray(splits),
        groups=groups if clips.groups else None,
    )


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample (n, samples) windows with soxr (high quality), keeping float32."""
    if source_rate == target_rate:
        return audio
    import soxr

    out = [soxr.resample(row, source_rate, target_rate, quality="HQ") for row in audio]
    return np.stack(out).astype(np.float32, copy=False)
