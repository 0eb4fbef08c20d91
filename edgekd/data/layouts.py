"""Real dataset layouts: UrbanSound8K, ESC-50, SONYC-UST, and a generic folder (optionally with a labels CSV).

Each lister reads the dataset's own metadata and keeps its official folds or splits; no audio is read here (the
audio store decodes each file once, screening unreadable, empty, silent or non-finite ones).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from edgekd.data.audio import AUDIO_SUFFIXES, file_decoder
from edgekd.data.configs import (
    Esc50Config,
    FolderConfig,
    LayoutConfig,
    SonycUstConfig,
    UrbanSound8KConfig,
)
from edgekd.data.sources import Catalogue, Source
from edgekd.errors import EdgekdError


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise EdgekdError(f"{path}: metadata file not found (is data.root the dataset's top folder?)")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _require_columns(rows: list[dict], columns: set[str], path: Path) -> None:
    missing = columns - set(rows[0] if rows else {})
    if missing:
        raise EdgekdError(f"{path}: missing column(s) {', '.join(sorted(missing))}")


def _catalogue(entries: list[Source], config: LayoutConfig, class_names: list[str]) -> Catalogue:
    sources = entries[: config.max_clips] if config.max_clips else entries
    identity = {"dataset": config.name, "root": str(Path(config.root).resolve()), "max_channels": config.max_channels}
    return Catalogue(sources, class_names, identity, file_decoder(config.max_channels))


def _classes(rows: list[dict], id_column: str, name_column: str) -> tuple[list[str], dict[int, int]]:
    """Class names in the dataset's id order, and each id's label index (ids present may have gaps)."""
    names = {int(r[id_column]): r[name_column] for r in rows}
    order = sorted(names)
    return [names[i] for i in order], {i: position for position, i in enumerate(order)}


def _fold_split(fold: int, config) -> str:
    return "test" if fold in config.test_folds else "val" if fold in config.val_folds else "train"


def _folded_clips(config, meta: Path, columns: tuple[str, str, str], audio_path) -> Catalogue:
    """A dataset with one metadata CSV of (file, fold, class id, class name) rows and official folds."""
    file_column, id_column, name_column = columns
    rows = _read_csv(meta)
    _require_columns(rows, {file_column, "fold", id_column, name_column}, meta)
    class_names, label_of = _classes(rows, id_column, name_column)
    entries = [Source(r[file_column], audio_path(r), label_of[int(r[id_column])], _fold_split(int(r["fold"]), config),
                      f"fold{r['fold']}") for r in rows]
    return _catalogue(entries, config, class_names)


def urbansound8k_clips(config: UrbanSound8KConfig, seed: int) -> Catalogue:
    root = Path(config.root)
    return _folded_clips(config, root / "metadata" / "UrbanSound8K.csv",
                         ("slice_file_name", "classID", "class"),
                         lambda r: root / "audio" / f"fold{r['fold']}" / r["slice_file_name"])


def esc50_clips(config: Esc50Config, seed: int) -> Catalogue:
    root = Path(config.root)
    return _folded_clips(config, root / "meta" / "esc50.csv", ("filename", "target", "category"),
                         lambda r: root / "audio" / r["filename"])


def sonyc_ust_clips(config: SonycUstConfig, seed: int) -> Catalogue:
    """Multi-label: a tag is present when most of a clip's annotators marked it; groups are sensor ids."""
    root = Path(config.root)
    meta = root / "annotations.csv"
    rows = _read_csv(meta)
    _require_columns(rows, {"split", "sensor_id", "audio_filename", "annotator_id"}, meta)
    suffix = "_presence"
    tags = [c[: -len(suffix)] for c in rows[0] if c.endswith(suffix)
            and (c.split("_")[0].count("-") == (1 if config.level == "fine" else 0))]
    if not tags:
        raise EdgekdError(f"{meta}: no {config.level} '*_presence' columns")
    votes: dict[str, list] = {}
    for row in rows:
        presence = [float(row[f"{t}{suffix}"] or 0) > 0 for t in tags]
        votes.setdefault(row["audio_filename"], [row, []])[1].append(presence)
    split_names = {"train": "train", "validate": "val", "test": "test"}
    entries = []
    for filename, (row, presences) in votes.items():
        labels = (np.mean(presences, axis=0) > 0.5).astype(np.int64)
        folder = root / "audio"
        path = folder / filename if (folder / filename).is_file() else root / f"audio-{row['split']}" / filename
        entries.append(Source(filename, path, labels, split_names.get(row["split"], "train"), row["sensor_id"]))
    return _catalogue(entries, config, tags)


def _hashed_split(path: str, fractions) -> str:
    """A file's split from a hash of its path: stable when files are added or removed."""
    value = int(hashlib.sha1(path.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if value < fractions[0] else "val" if value < fractions[0] + fractions[1] else "test"


def folder_clips(config: FolderConfig, seed: int) -> Catalogue:
    root = Path(config.root)
    if not root.is_dir():
        raise EdgekdError(f"key 'data.root': folder not found: {root}")
    if config.labels_csv:
        meta = Path(config.labels_csv)
        rows = _read_csv(meta)
        _require_columns(rows, {"path", "label"}, meta)
        class_names = sorted({r["label"].strip() for r in rows} - {""})  # an empty label: a clip without one
        entries = [Source(r["path"], root / r["path"],
                          class_names.index(r["label"].strip()) if r["label"].strip()
                          else -1 if class_names else None,
                          r.get("split") or _hashed_split(r["path"], config.split_fractions), r.get("group") or "")
                   for r in rows]
    else:  # unlabelled domain audio, SEA's case: the sensor network's own recordings
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())
        class_names = []
        names = [str(p.relative_to(root)) for p in files]
        entries = [Source(name, p, None, _hashed_split(name, config.split_fractions), p.parent.name)
                   for name, p in zip(names, files)]
    if not entries:
        raise EdgekdError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return _catalogue(entries, config, class_names)
