"""Dataset registry: name → config model and loader returning Clips."""

from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from edgekd.data.synthetic import SyntheticUrbanConfig, synthetic_urban_clips
from edgekd.data.types import Clips, Windows, make_windows, resample


@dataclass(frozen=True)
class DatasetEntry:
    config: type[BaseModel]
    load: Callable[[BaseModel, int], Clips]  # (config, seed) → clips
    description: str


DATASETS: dict[str, DatasetEntry] = {
    "synthetic_urban": DatasetEntry(
        SyntheticUrbanConfig,
        synthetic_urban_clips,
        "deterministic synthetic urban sounds, the 10 UrbanSound8K classes over varied noise and SNR",
    ),
}


def load_clips(config: BaseModel, seed: int) -> Clips:
    return DATASETS[config.name].load(config, seed)


__all__ = ["DATASETS", "Clips", "Windows", "load_clips", "make_windows", "resample"]
