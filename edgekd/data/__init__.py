"""Dataset registry: name → config model and loader (config, sample rate, report, seed) → Clips."""

from pydantic import BaseModel

from edgekd.data.audio import AudioReport
from edgekd.data.layouts import (
    Esc50Config,
    FolderConfig,
    SonycUstConfig,
    UrbanSound8KConfig,
    esc50_clips,
    folder_clips,
    sonyc_ust_clips,
    urbansound8k_clips,
)
from edgekd.data.synthetic import SyntheticUrbanConfig, synthetic_urban_clips
from edgekd.data.types import Clips, Windows, make_windows, resample
from edgekd.registry import Entry

DATASETS: dict[str, Entry] = {
    "synthetic_urban": Entry(
        SyntheticUrbanConfig, synthetic_urban_clips,
        "deterministic synthetic urban sounds, the 10 UrbanSound8K classes over varied noise and SNR (offline)",
    ),
    "urbansound8k": Entry(UrbanSound8KConfig, urbansound8k_clips,
                                 "UrbanSound8K: metadata/UrbanSound8K.csv, audio/fold1..10 (official folds)"),
    "esc50": Entry(Esc50Config, esc50_clips, "ESC-50: meta/esc50.csv, audio/ (5 folds)"),
    "sonyc_ust": Entry(SonycUstConfig, sonyc_ust_clips,
                              "SONYC-UST: annotations.csv, multi-label coarse/fine tags, sensor ids"),
    "folder": Entry(FolderConfig, folder_clips,
                           "any folder of audio files, with an optional labels CSV (unlabelled works)"),
}


def load_clips(config: BaseModel, seed: int, sample_rate: int, strict: bool = False) -> Clips:
    """Clips at `sample_rate` (a dataset's own `sample_rate` key wins); bad files are skipped and listed."""
    report = AudioReport(strict=strict)
    rate = getattr(config, "sample_rate", None) or sample_rate
    return DATASETS[config.name].build(config, rate, report, seed)


__all__ = ["DATASETS", "AudioReport", "Clips", "Windows", "load_clips", "make_windows", "resample"]
