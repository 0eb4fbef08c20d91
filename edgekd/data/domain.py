"""A domain's data as every stage sees it: the audio stores built (once per clip and rate), the windows as an
index, and their audio at the teacher's and the student's rates, read per batch."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from edgekd.data.configs import Domain
from edgekd.data.registry import DATASETS
from edgekd.data.sources import Catalogue, Source
from edgekd.data.store import (
    AudioStore,
    StoredClip,
    build_stores,
    open_store,
    signature,
    store_directory,
)
from edgekd.data.windows import Clips, WindowAudio, Windows, make_windows
from edgekd.errors import EdgekdError
from edgekd.runtime import barrier, rank_and_world


@dataclass
class DomainData:
    windows: Windows
    teacher_audio: WindowAudio  # at the teacher's rate (the student's, for a teacher that reads no audio)
    student_audio: WindowAudio  # the same windows at the student's own rate
    skipped: list[dict]  # audio files left out, with the reason
    discarded: list[str]  # damaged store shards removed and decoded again


def catalogues(domain: Domain) -> list[Catalogue]:
    """The clips of each dataset the domain lists, in its order. When it lists several, a dataset's error names its
    entry (`data[i].root`, not `data.root`)."""
    listed = []
    for index, config in enumerate(domain.datasets):
        try:
            listed.append(DATASETS[config.name].build(config, domain.seed))
        except EdgekdError as err:
            if len(domain.datasets) == 1:
                raise
            message = str(err).replace("data.", f"data[{index}].")
            raise type(err)(message if message != str(err) else f"{message} (data[{index}]: {config.name})") from None
    return listed


def load_domain_data(domain: Domain, teacher_rate: int | None, student_rate: int, strict: bool = False,
                     on_progress: Callable[[int, int], None] | None = None, build: bool = True) -> DomainData:
    """Build what is missing from the stores at the teacher's and the student's rates (the student's alone for a
    teacher that reads no audio; under torchrun each rank decodes its share), then index the windows. Each dataset
    has its own stores, so listing one beside others decodes nothing it already holds. With `build=False`, only what
    the stores already hold is indexed (nothing is checked: `edgekd data info`)."""
    listed = catalogues(domain)
    rates = list(dict.fromkeys([teacher_rate or student_rate, student_rate]))
    discarded = []
    if build:
        for catalogue in listed:
            discarded += build_stores(catalogue, rates, rank_and_world(), on_progress, barrier)
    stores = [[open_store(store_directory(catalogue.identity, rate), rate, verify=False) for rate in rates]
              for catalogue in listed]
    usable = [_usable_clips(catalogue, its_stores) for catalogue, its_stores in zip(listed, stores)]
    tags = _dataset_tags(domain) if len(listed) > 1 else [""] * len(listed)
    kept = [(tag, source) for tag, (sources, _, _) in zip(tags, usable) for source in sources]
    clips = Clips(ids=[tag + source.clip_id for tag, source in kept],
                  seconds=np.asarray([clip.length / rates[0] for _, stored, _ in usable for clip in stored[0]],
                                     dtype=np.float64),
                  labels=_labels(domain, listed, [sources for sources, _, _ in usable]),
                  class_names=next((c.class_names for c in listed if _has_labels(c)), listed[0].class_names),
                  splits=np.asarray([source.split for _, source in kept]),
                  groups=[tag + source.group if source.group else "" for tag, source in kept]
                  if any(source.group for _, source in kept) else None)
    windows, short = make_windows(clips, domain.window.seconds, domain.window.hop_seconds, domain.window.min_fraction,
                                  rates[0])
    store_of = np.concatenate([np.full(len(sources), index, np.int32) for index, (sources, _, _) in enumerate(usable)])
    audio = [WindowAudio(windows, rate, [its_stores[column] for its_stores in stores], store_of,
                         [clip for _, stored, _ in usable for clip in stored[column]])
             for column, rate in enumerate(rates)]
    data = DomainData(windows, audio[0], audio[-1], [entry for _, _, skipped in usable for entry in skipped] + short,
                      discarded)
    if build:
        _check(domain, data, strict)
    return data


def _check(domain: Domain, data: DomainData, strict: bool) -> None:
    skipped = data.skipped
    if strict and skipped:
        raise EdgekdError(f"{skipped[0]['path']}: {skipped[0]['reason']} (--strict)")
    if not data.windows.clips.ids:
        raise EdgekdError(f"{domain.source}: the data has no usable audio{_skip_summary(skipped)}")
    for split in ("train", "val", "test"):
        if len(data.windows.split_index(split)) == 0:
            raise EdgekdError(f"{domain.source}: the data has no '{split}' windows{_skip_summary(skipped)}; add "
                              "clips or change the split")


def _dataset_tags(domain: Domain) -> list[str]:
    """'esc50:' before each clip id and group of a dataset listed beside others ('folder#2:' for a second folder),
    so that two datasets' clips never share a name."""
    names = [config.name for config in domain.datasets]
    return [f"{name}:" if names.count(name) == 1 else f"{name}#{names[:index + 1].count(name)}:"
            for index, name in enumerate(names)]


def _has_labels(catalogue: Catalogue) -> bool:
    return any(source.label is not None for source in catalogue.sources)


def _labels(domain: Domain, listed: list[Catalogue], kept: list[list[Source]]) -> np.ndarray | None:
    """One label per usable clip; -1 (a row of -1 for tags) for the clips of an unlabelled dataset listed beside a
    labelled one. Labelled datasets listed together must share their classes."""
    labelled = [index for index, catalogue in enumerate(listed) if _has_labels(catalogue)]
    if not labelled:
        return None
    first = labelled[0]
    for index in labelled[1:]:
        if listed[index].class_names != listed[first].class_names:
            ours, theirs = (", ".join(listed[i].class_names[:4]) for i in (index, first))
            raise EdgekdError(f"{domain.source}: key 'data[{index}]' has classes ({ours}, ...) unlike data[{first}] "
                              f"({theirs}, ...); labelled datasets in one recipe must share their classes")
    example = np.asarray(next(s.label for s in listed[first].sources if s.label is not None))
    unlabelled = np.full(example.shape, -1, np.int64)
    return np.asarray([unlabelled if source.label is None else source.label for sources in kept for source in sources],
                      dtype=np.int64).reshape(-1, *example.shape)


def _usable_clips(listed: Catalogue, stores: list[AudioStore]) -> tuple[list[Source], list[list[StoredClip]],
                                                                         list[dict]]:
    """The sources every store of a dataset holds (with their stored form per store), and the files screened out,
    with why."""
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
    return kept, stored, skipped


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
    stores = [{"rate": audio.sample_rate, "directory": str(store.directory), "bytes": store.size_bytes}
              for audio in dict.fromkeys([data.teacher_audio, data.student_audio]) for store in audio.stores]
    return DataSummary(len(windows.clips.ids), round(float(windows.clips.seconds.sum()) / 3600, 4),
                       {split: int(len(windows.split_index(split))) for split in ("train", "val", "test")},
                       stores, data.skipped, dict(_reasons(data.skipped)))
