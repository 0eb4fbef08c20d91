"""The teacher interface, and what every teacher shares: running a fixed-input-length model over windows of any
length, and identities."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.teachers.configs import TeacherConfig


class Teacher(Protocol):
    """What the pipeline asks of a teacher."""

    embeds: ClassVar[bool]  # False only for NoTeacher: there are no teacher embeddings to learn
    sample_rate: int | None  # its input rate; None when it reads no audio (precomputed embeddings)
    dim: int

    def identity(self) -> dict:
        """What makes its embeddings what they are (weights digest, input settings): the cache key."""

    def to(self, device: torch.device) -> "Teacher": ...

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) windows at `sample_rate` → (batch, dim) embeddings."""

    def known_embeddings(self, clip_ids: list[str], starts: np.ndarray) -> np.ndarray | None:
        """Embeddings it already has for these windows (precomputed teachers), else None: they are computed."""

    def deployable(self, window_seconds: float) -> tuple[nn.Module, torch.Tensor, int] | None:
        """The network a device would run, an example input, and runs per window; None when edgekd cannot export
        it (precomputed, or already an ONNX file: profile that file directly)."""


class NoTeacher:
    """The null teacher of `teacher: none`: runs learn from labels (and teacher-free soft labels) alone."""

    embeds = False
    sample_rate = None
    dim = 0

    def __init__(self, config=None):
        pass

    def deployable(self, window_seconds: float) -> None:
        return None


def example_input(samples: int) -> torch.Tensor:
    """A fixed example window for exporting a teacher to measure it (its values do not change the figures)."""
    return torch.randn(1, samples, generator=torch.Generator().manual_seed(0)) * 0.1


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def portable_description(config: TeacherConfig) -> dict:
    """What a file shipped to others may say of a teacher: the keys its recipe set, and its weights file by name, size
    and digest, never by its local path."""
    described = {"name": config.name} | config.model_dump(mode="json", exclude_unset=True)
    path = described.pop("path", None)
    if path:
        file = Path(path).expanduser()
        described["file"] = file.name
        if file.is_file():
            described |= {"bytes": file.stat().st_size, "sha256_16": file_digest(file)}
    return described


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


class ComputedTeacher:
    """A teacher that runs on the audio: its embeddings are computed (and cached), never known beforehand."""

    embeds = True

    def known_embeddings(self, clip_ids: list[str], starts: np.ndarray) -> None:
        return None
