"""A recipe's domain data as every stage sees it: the audio stores built (once per clip and rate), the windows as an
index, and their audio at the teacher's and the student's rates, read per batch."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from edgekd.data.registry import DATASETS
from edgekd.data.sources import Catalogue
from edgekd.data.store import (
    AudioStore,
    build_stores,
    open_store,
    signature,
    store_directory,
)
from edgekd.data.windows import Clips, WindowAudio, Windows, make_windows
from edgekd.errors import EdgekdError
from edgekd.recipe import Recipe
from edgekd.runtime import barrier, rank_and_world


@dataclass
class DomainData:
    windows: Windows
    teacher_audio: WindowAudio  # at the teacher's rate (the student's, for a teacher that reads no audio)
    student_audio: WindowAudio  # the same windows at the student's own rate
    skipped: list[dict]  # audio files left out, with the reason
    discarded: list[str]  # damaged store shards removed and decoded again


def catalogue(recipe: Recipe) -> Catalogue:
    return DATASETS[recipe.data.name].build(recipe.data, recipe.seed)


def load_domain_data(recipe: Recipe, teacher_rate: int | None, strict: bool = False,
                     on_progress: Callable[[int, int], None] | None = None, build: bool = True) -> DomainData:
    """Build what is missing from the stores (under torchrun each rank decodes its share), then index the windows.
    With `build=False`, only what the stores already hold is indexed (nothing is checked: `edgekd data info`)."""
    listed = catalogue(recipe)
    rates = list(dict.fromkeys([teacher_rate or recipe.student.sample_rate, recipe.student.sample_rate]))
    discarded = build_stores(listed, rates, rank_and_world(), on_progress, barrier) if build else []
    barrier()  # every rank sees every shard
    stores = [open_store(store_directory(listed.identity, rate), rate, verify=False) for rate in rates]
    clips, stored, skipped = _usable_clips(listed, stores)
    windows, short = make_windows(clips, recipe.window.seconds, recipe.window.hop_seconds, recipe.window.min_fraction,
                                  rates[0])
    audio = [WindowAudio(windows, store, clips_of_store) for store, clips_of_store in zip(stores, stored)]
    data = DomainData(windows, audio[0], audio[-1], skipped + short, discarded)
    if build:
        _check(recipe, data, strict)
    return data


def _check(recipe: Recipe, data: DomainData, strict: bool) -> None:
    skipped = data.skipped
    if strict and skipped:
        raise EdgekdError(f"{skipped[0]['path']}: {skipped[0]['reason']} (--strict)")
    if not data.windows.clips.ids:
        raise EdgekdError(f"{recipe.source}: the data has no usable audio{_skip_summary(skipped)}")
    for split in ("train", "val", "test"):
        if len(data.windows.split_index(split)) == 0:
            raise EdgekdError(f"{recipe.source}: the data has no '{split}' windows{_skip_summary(skipped)}; add "
                              "clips or change the split")


def _usable_clips(listed: Catalogue, stores: list[AudioStore]) -> tuple[Clips, list[list], list[dict]]:
    """The clips every store holds (with their stored form per store), and the files screened out, with why."""
    kept, stored, skipped = [], [[] for _ in stores], []
    for source in listed.sources:
        key = (source.key, signature(source))
        reason = next((store.screened[key] for store in stores if key in store.screened), None)
        if reason is None and not all(key in store.clips for store in stores):
            reason = "not in the audio store yet (`edgekd data build`)"
        if reason is not None:
            skipped.append({"path": source.key, "reason": reason})
            continue
        kept.append(source)
        for column, store in zip(stored, stores):
            column.append(store.clips[key])
    labels = [source.label for source in kept]
    clips = Clips(ids=[source.clip_id for source in kept],
                  seconds=np.asarray([clip.length / stores[0].rate for clip in stored[0]], dtype=np.float64),
                  labels=np.asarray(labels, dtype=np.int64) if kept and labels[0] is not None else None,
                  class_names=listed.class_names, splits=np.asarray([source.split for source in kept]),
                  groups=[source.group for source in kept] if any(source.group for source in kept) else None)
    return clips, stored, skipped


def _skip_summary(skipped: list[dict]) -> str:
    """' (3 files skipped: 2 unreadable, 1 shorter than ...)' — why the data may have come up short."""
    if not skipped:
        return ""
    reasons = _reasons(skipped)
    return f" ({len(skipped)} file(s) skipped: " + ", ".join(f"{n} {reason}" for reason, n in reasons.items()) + ")"


def _reasons(skipped: list[dict]) -> Counter:
    """How many files were skipped for each kind of reason (details in parentheses dropped)."""
    return Counter(entry["reason"].split(" (")[0] for entry in skipped)


@dataclass
class DataSummary:
    """`edgekd data build|info`: what a recipe's data is once in the audio store."""

    clips: int
    hours: float
    windows: dict[str, int]
    stores: list[dict]  # per rate: rate, directory, bytes on disk
    skipped: list[dict]  # files left out, with why
    skipped_by_reason: dict[str, int]

    def to_json(self) -> dict:
        return asdict(self)


def summarise(data: DomainData) -> DataSummary:
    windows = data.windows
    stores = [{"rate": audio.sample_rate, "directory": str(audio.store.directory), "bytes": audio.store.size_bytes}
              for audio in dict.fromkeys([data.teacher_audio, data.student_audio])]
    return DataSummary(len(windows.clips.ids), round(float(windows.clips.seconds.sum()) / 3600, 4),
                       {split: int(len(windows.split_index(split))) for split in ("train", "val", "test")},
                       stores, data.skipped, dict(_reasons(data.skipped)))
