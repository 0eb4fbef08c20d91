"""A recipe's domain data as every stage sees it: windows at the loading rate, and the same windows at the
student's own rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekd.data.audio import load_clips
from edgekd.data.windows import Windows, make_windows, resample
from edgekd.errors import EdgekdError
from edgekd.recipe import Recipe


@dataclass
class DomainData:
    windows: Windows
    student_audio: np.ndarray  # windows resampled to the student's own rate
    skipped: list[dict]  # audio files left out, with the reason


def load_domain_data(recipe: Recipe, sample_rate: int, strict: bool = False) -> DomainData:
    """Windows of the recipe's data loaded at `sample_rate` (the teacher's, unless the data sets its own)."""
    clips = load_clips(recipe.data, recipe.seed, sample_rate, strict)
    windows = make_windows(clips, recipe.window.seconds, recipe.window.hop_seconds)
    for split in ("train", "val", "test"):
        if len(windows.split_index(split)) == 0:
            raise EdgekdError(f"{recipe.source}: the data has no '{split}' windows; add clips or change the split")
    student_audio = resample(windows.audio, windows.sample_rate, recipe.student.sample_rate)
    return DomainData(windows, student_audio, clips.skipped)
