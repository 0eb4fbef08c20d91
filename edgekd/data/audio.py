"""Reading domain audio files: soundfile (wav, flac, ogg, mp3), mono mix-down and bad-file screening. Resampling to
each consumer's rate happens once, in the audio store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgekd.data.sources import BadAudio, Decoded, Source
from edgekd.errors import first_line

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
SILENCE_PEAK = 1e-6  # a file whose peak is below this carries no signal


def load_audio(path: Path, max_channels: int = 2) -> Decoded:
    """(mono float32, the file's rate); raises BadAudio for unreadable, empty, silent or non-finite files."""
    import soundfile

    if not path.is_file():  # a FIFO, device or socket named like audio: reading it could wait forever
        raise BadAudio("not a regular file" if path.exists() else "file not found")
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
    return mono, rate


def file_decoder(max_channels: int):
    def decode(sources: list[Source]) -> Iterator[tuple[Source, Decoded | BadAudio]]:
        for source in sources:
            try:
                yield source, load_audio(source.path, max_channels)
            except BadAudio as err:
                yield source, err

    return decode


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """One clip (or (n, samples) rows) resampled with soxr (high quality), kept float32."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr

    if audio.ndim == 1:
        return soxr.resample(audio, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    return np.stack([soxr.resample(row, source_rate, target_rate, quality="HQ") for row in audio]).astype(np.float32)
