"""Dataset registry: name → config model and lister (config, seed) → Catalogue (the clips, before any audio is read)."""

from __future__ import annotations

from edgekd.data.configs import (
    Esc50Config,
    FolderConfig,
    SonycUstConfig,
    SyntheticUrbanConfig,
    UrbanSound8KConfig,
)
from edgekd.registry import Entry

_LAYOUTS = "edgekd.data.layouts"

DATASETS: dict[str, Entry] = {
    "synthetic_urban": Entry(
        SyntheticUrbanConfig, "edgekd.data.synthetic:synthetic_urban_clips",
        "deterministic synthetic urban sounds, the 10 UrbanSound8K classes over varied noise and SNR (offline)",
    ),
    "urbansound8k": Entry(UrbanSound8KConfig, f"{_LAYOUTS}:urbansound8k_clips",
                          "UrbanSound8K: metadata/UrbanSound8K.csv, audio/fold1..10 (official folds)"),
    "esc50": Entry(Esc50Config, f"{_LAYOUTS}:esc50_clips", "ESC-50: meta/esc50.csv, audio/ (5 folds)"),
    "sonyc_ust": Entry(SonycUstConfig, f"{_LAYOUTS}:sonyc_ust_clips",
                       "SONYC-UST: annotations.csv, multi-label coarse/fine tags, sensor ids"),
    "folder": Entry(FolderConfig, f"{_LAYOUTS}:folder_clips",
                    "any folder of audio files, with an optional labels CSV (unlabelled works)"),
}
