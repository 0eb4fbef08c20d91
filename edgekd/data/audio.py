"""Reading domain audio: soundfile (wav, flac, ogg, mp3), mono mix-down, soxr resampling, and bad-file screening."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.data.configs import DataConfig
from edgekd.data.registry import DATASETS
from edgekd.data.windows import Clips
from edgekd.errors import EdgekdError, first_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SILENCE_PEAK = 1e-6  # a file whose peak is below this carries no signal


class BadAudio(Exception):
    """A file that cannot be used, with the reason."""


@dataclass
class AudioReport:
    """Files skipped while loading, with why: listed in the run's metrics, or an error with --strict."""

    strict: bool = False
    skipped: list[dict] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        if self.strict:
            raise EdgekdError(f"{path}: {reason} (--strict)")
        self.skipped.append({"path": str(path), "reason": reason})


def load_audio(path: Path, sample_rate: int, max_channels: int = 2) -> np.ndarray:
    """Mono float32 at `sample_rate`; raises BadAudio for unreadable, empty, silent or non-finite files."""
    import soundfile
    import soxr

    if not path.is_file():  # a FIFO, device or socket named like audio: reading it could wait forever
        raise BadAudio("not a regular file")
    try:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile raises several types for corrupt and unsupported files
        raise BadAudio(f"unreadable ({first_line(err, 120)})") from None
    if audio.shape[0] == 0:
        raise BadAudio("zero-length")
    if audio.shape[1] > max_channels:
        raise BadAudio(f"{audio.shape[1]} channels; data.max_channels is {max_channels}")
    if not np.isfinite(audio).all():
        raise BadAudio("contains NaN or inf samples")
    mono = audio.mean(axis=1)
    if np.abs(mono).max() < SILENCE_PEAK:
        raise BadAudio("all silent")
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="HQ").astype(np.float32)
    return mono


def load_clips(config: DataConfig, seed: int, sample_rate: int, strict: bool = False) -> Clips:
    """Clips at `sample_rate` (a dataset's own `sample_rate` key wins); bad files are skipped and listed."""
    report = AudioReport(strict=strict)
    rate = getattr(config, "sample_rate", None) or sample_rate
    return DATASETS[config.name].build(config, rate, report, seed)
