"""A recipe's domain data as every stage sees it: windows at the loading rate, and the same windows at the
student's own rate."""

from __future__ import annotations

from collections import Counter
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
    windows = make_windows(clips, recipe.window.seconds, recipe.window.hop_seconds, recipe.window.min_fraction)
    if strict and clips.skipped:
        raise EdgekdError(f"{clips.skipped[0]['path']}: {clips.skipped[0]['reason']} (--strict)")
    for split in ("train", "val", "test"):
        if len(windows.split_index(split)) == 0:
            raise EdgekdError(f"{recipe.source}: the data has no '{split}' windows{_skip_summary(clips.skipped)}; add "
                              "clips or change the split")
    student_audio = resample(windows.audio, windows.sample_rate, recipe.student.sample_rate)
    return DomainData(windows, student_audio, clips.skipped)


def _skip_summary(skipped: list[dict]) -> str:
    """' (3 files skipped: 2 unreadable, 1 shorter than ...)' — why the data may have come up short."""
    if not skipped:
        return ""
    reasons = Counter(entry["reason"].split(" (")[0] for entry in skipped)
    return f" ({len(skipped)} file(s) skipped: " + ", ".join(f"{n} {reason}" for reason, n in reasons.items()) + ")"
