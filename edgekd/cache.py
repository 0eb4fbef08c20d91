"""Teacher-embedding cache: teacher inference runs once per (teacher, weights, data) and is reused by every
student trained on it (the offline-teacher idea: compute once, train many)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edgekd.data import Windows, resample
from edgekd.paths import cache_root


@dataclass
class CachedEmbeddings:
    embeddings: np.ndarray  # (windows, teacher_dim) float32
    directory: Path
    hit: bool  # True when read from the cache, False when computed now


def cache_key(teacher_identity: dict, windows: Windows) -> str:
    payload = json.dumps({"teacher": teacher_identity, "data": windows.manifest_digest()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)


def teacher_embeddings(
    teacher,
    windows: Windows,
    device: torch.device,
    batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> CachedEmbeddings:
    """Embeddings of every window by the teacher, from the cache when this exact teacher saw this exact data."""
    identity = teacher.identity()
    directory = cache_root() / "teacher" / cache_key(identity, windows)
    target = directory / "embeddings.npy"
    if target.is_file():
        embeddings = np.load(target, allow_pickle=False)
        if embeddings.shape[0] == len(windows) and np.isfinite(embeddings).all():
            return CachedEmbeddings(embeddings, directory, hit=True)
    directory.mkdir(parents=True, exist_ok=True)
    teacher.to(device)
    audio = resample(windows.audio, windows.sample_rate, teacher.sample_rate)
    chunks = []
    for start in range(0, len(audio), batch_size):
        chunk = torch.from_numpy(audio[start : start + batch_size])
        chunks.append(teacher.embed(chunk.to(device)).float().cpu().numpy())
        if on_progress:
            on_progress(min(start + batch_size, len(audio)), len(audio))
    embeddings = np.concatenate(chunks).astype(np.float32)
    _atomic_save(target, embeddings)
    (directory / "index.json").write_text(
        json.dumps({"teacher": identity, "windows": len(windows), "clip_ids": windows.clip_ids,
                    "starts": windows.starts.tolist(), "dim": int(embeddings.shape[1])}, indent=1)
    )
    return CachedEmbeddings(embeddings, directory, hit=False)
