"""What every teacher shares: running a fixed-input-length model over windows of any length, and identities."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch

from edgekd.errors import EdgekdError


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def require_file(path: str | None, teacher: str, example: str) -> Path:
    if not path:
        raise EdgekdError(f"teacher '{teacher}' needs key 'teacher.path': {example}")
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise EdgekdError(f"teacher '{teacher}': file not found: {resolved}")
    return resolved


def embed_in_segments(model: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, length: int,
                      batch_size: int) -> torch.Tensor:
    """Embed (batch, samples) windows with a model that takes exactly `length` samples: cut each window into
    consecutive segments (the last zero-padded) and average the segment embeddings."""
    count = max(1, -(-audio.shape[1] // length))
    padded = torch.nn.functional.pad(audio, (0, count * length - audio.shape[1]))
    segments = padded.reshape(audio.shape[0] * count, length)
    outputs = [model(segments[i : i + batch_size]) for i in range(0, len(segments), batch_size)]
    return torch.cat(outputs).reshape(audio.shape[0], count, -1).mean(dim=1)
