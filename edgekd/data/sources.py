"""What a dataset lists before any audio is read: its clips (id, where the audio is, label, split, group) and how
to decode them. The audio store (edgekd.data.store) decodes each clip once; nothing else reads the files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class BadAudio(Exception):
    """A file that cannot be used, with the reason."""


@dataclass(frozen=True)
class Source:
    clip_id: str
    path: Path | None  # the audio file; None for generated audio
    label: Any = None  # class index, (tags,) 0/1 for multi-label, None when unlabelled
    split: str = "train"
    group: str = ""

    @property
    def key(self) -> str:
        """The clip's name in the audio store: its file, or its id when generated."""
        return str(self.path) if self.path is not None else self.clip_id


# A decoder yields (source, (mono float32, its sample rate)) or (source, BadAudio) for each source, in order.
Decoded = tuple[np.ndarray, int]
Decoder = Callable[[list[Source]], Iterator[tuple[Source, "Decoded | BadAudio"]]]


@dataclass
class Catalogue:
    """A dataset's clips, its class names, what its audio depends on besides each file (names its store), and its
    decoder."""

    sources: list[Source]
    class_names: list[str]
    identity: dict
    decode: Decoder
