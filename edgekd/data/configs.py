"""The `data:` section: which dataset, where it lives, and how it is split (plain pydantic: no audio is read here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from pydantic import Field, model_validator

from edgekd.configs import WindowConfig
from edgekd.schema import StrictModel


class SyntheticUrbanConfig(StrictModel):
    name: Literal["synthetic_urban"] = "synthetic_urban"
    sample_rate: int = Field(16000, ge=4000, le=96000)
    clip_seconds: float = Field(1.0, gt=0.1, le=30)
    clips_per_class: int = Field(40, ge=3, le=100_000)
    snr_db: tuple[float, float] = (-3.0, 12.0)
    split_fractions: tuple[float, float, float] = Field((0.6, 0.2, 0.2), description="train, val, test")

    @model_validator(mode="after")
    def _check(self):
        if abs(sum(self.split_fractions) - 1.0) > 1e-6 or min(self.split_fractions) <= 0:
            raise ValueError("split_fractions must be three positive numbers summing to 1")
        if self.snr_db[0] > self.snr_db[1]:
            raise ValueError("snr_db must be [low, high]")
        return self


class LayoutConfig(StrictModel):
    root: str = Field(description="the dataset's top folder")
    max_clips: int | None = Field(None, ge=1, description="use only the first N clips (quick trials)")
    max_channels: int = Field(2, ge=1)


class UrbanSound8KConfig(LayoutConfig):
    name: Literal["urbansound8k"] = "urbansound8k"
    val_folds: list[int] = [9]
    test_folds: list[int] = [10]


class Esc50Config(LayoutConfig):
    name: Literal["esc50"] = "esc50"
    val_folds: list[int] = [4]
    test_folds: list[int] = [5]


class SonycUstConfig(LayoutConfig):
    name: Literal["sonyc_ust"] = "sonyc_ust"
    level: Literal["coarse", "fine"] = "coarse"


class FolderConfig(LayoutConfig):
    name: Literal["folder"] = "folder"
    labels_csv: str | None = Field(None, description="CSV with columns path,label and optional group,split")
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)


DataConfig = Union[SyntheticUrbanConfig, UrbanSound8KConfig, Esc50Config, SonycUstConfig, FolderConfig]


@dataclass(frozen=True)
class Domain:
    """What the data stage reads, and nothing else of a recipe: the datasets (read as one, their clips side by
    side), how clips are cut into windows, the seed of generated data and splits, and the file that named them (its
    errors name it)."""

    datasets: tuple[DataConfig, ...]
    window: WindowConfig
    seed: int
    source: str
