"""Real dataset layouts on tiny fixtures written in each dataset's own folder and CSV layout."""

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import data_recipe, load_data

from edgekd.data.configs import (
    Esc50Config,
    FolderConfig,
    SonycUstConfig,
    UrbanSound8KConfig,
)
from edgekd.data.domain import load_domain_data
from edgekd.errors import EdgekdError


def _tone(path: Path, rate: int = 22050, seconds: float = 1.0, channels: int = 1, freq: float = 440.0,
          subtype: str = "PCM_16"):
    t = np.arange(int(rate * seconds)) / rate
    audio = 0.3 * np.sin(2 * np.pi * freq * t)
    audio = np.repeat(audio[:, None], channels, axis=1) if channels > 1 else audio
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, rate, subtype=subtype)


def _write_csv(path: Path, header: list[str], rows: list[list]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_urbansound8k_official_folds_and_resampling(tmp_path):
    rows = []
    for fold in range(1, 11):
        for class_id, name in ((0, "air_conditioner"), (3, "dog_bark")):
            file = f"{fold}{class_id}-0-0-0.wav"
            _tone(tmp_path / "audio" / f"fold{fold}" / file, rate=44100, freq=200 + 100 * class_id)
            rows.append([file, "0", "0", "1", "1", fold, class_id, name])
    _write_csv(tmp_path / "metadata" / "UrbanSound8K.csv",
               ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"], rows)
    data = load_data(UrbanSound8KConfig(root=str(tmp_path)), 16000)
    clips = data.windows.clips
    assert len(clips.ids) == 20 and data.teacher_audio.sample_rate == 16000 and clips.seconds[0] == 1.0
    assert data.teacher_audio.stored[0].length == 16000
    assert clips.class_names == ["air_conditioner", "dog_bark"]
    assert sorted(set(clips.labels.tolist())) == [0, 1]
    assert (clips.splits == "test").sum() == 2 and (clips.splits == "val").sum() == 2
    assert clips.groups[0] == "fold1"


def test_esc50_layout(tmp_path):
    rows = []
    for fold in range(1, 6):
        file = f"{fold}-100-A-0.wav"
        _tone(tmp_path / "audio" / file, rate=44100, seconds=5.0)
        rows.append([file, fold, 0, "dog", "True", 100, "A"])
    _write_csv(tmp_path / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file",
                                                  "take"], rows)
    data = load_data(Esc50Config(root=str(tmp_path)), 8000)
    clips = data.windows.clips
    assert len(clips.ids) == 5 and data.teacher_audio.stored[0].length == 40000
    assert clips.splits.tolist() == ["train", "train", "train", "val", "test"]


def test_sonyc_ust_multi_label_majority_vote(tmp_path):
    header = ["split", "sensor_id", "audio_filename", "annotator_id", "1-1_small-sounding-engine_presence",
              "1_engine_presence", "2_machinery-impact_presence"]
    rows = [
        ["train", "s1", "a.wav", "1", 1, 1, 0], ["train", "s1", "a.wav", "2", 1, 1, 1],
        ["train", "s1", "a.wav", "3", 0, 1, 0],
        ["validate", "s2", "b.wav", "1", 0, 0, 1], ["test", "s3", "c.wav", "0", 0, 1, 1],
    ]
    _write_csv(tmp_path / "annotations.csv", header, rows)
    for name in ("a.wav", "b.wav", "c.wav"):
        _tone(tmp_path / "audio" / name, rate=48000, seconds=10.0)
    coarse = load_data(SonycUstConfig(root=str(tmp_path)), 8000).windows.clips
    assert coarse.class_names == ["1_engine", "2_machinery-impact"]
    assert coarse.labels.tolist() == [[1, 0], [0, 1], [1, 1]]  # a: engine 3/3, impact 1/3 → absent
    assert coarse.splits.tolist() == ["train", "val", "test"] and coarse.groups == ["s1", "s2", "s3"]
    fine = load_data(SonycUstConfig(root=str(tmp_path), level="fine"), 8000).windows.clips
    assert fine.class_names == ["1-1_small-sounding-engine"] and fine.labels[:, 0].tolist() == [1, 0, 0]


def _bad_files(folder: Path) -> dict[str, str]:
    """One of each kind of unusable file, with the reason edgekd must give."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    soundfile.write(str(folder / "empty.wav"), np.zeros((0,)), 16000)
    soundfile.write(str(folder / "silent.wav"), np.zeros(16000), 16000)
    nan = np.full(16000, 0.1, np.float32)
    nan[100] = np.nan
    soundfile.write(str(folder / "nan.wav"), nan, 16000, subtype="FLOAT")
    _tone(folder / "surround.wav", channels=6)
    return {"corrupt.wav": "unreadable", "empty.wav": "zero-length", "silent.wav": "all silent",
            "nan.wav": "NaN or inf", "surround.wav": "6 channels"}


def test_unlabelled_folder_skips_and_lists_bad_audio(tmp_path):
    for i in range(6):
        _tone(tmp_path / "sensor-a" / f"{i}.flac", rate=48000, freq=300 + 50 * i)
    _tone(tmp_path / "sensor-b" / "x.ogg", rate=32000, subtype="VORBIS", channels=2)
    _tone(tmp_path / "sensor-b" / "y.mp3", rate=16000, subtype="MPEG_LAYER_III")
    expected = _bad_files(tmp_path / "bad")
    data = load_data(FolderConfig(root=str(tmp_path)), 16000)
    clips = data.windows.clips
    assert clips.labels is None and len(clips.ids) == 8
    assert all(abs(clip.length - 16000) <= 1152 for clip in data.teacher_audio.stored)  # mp3 frames pad
    reasons = {Path(s["path"]).name: s["reason"] for s in data.skipped}
    assert set(reasons) == set(expected)
    for name, reason in expected.items():
        assert reason in reasons[name], (name, reasons[name])
    with pytest.raises(EdgekdError, match=r"\(--strict\)"):
        load_domain_data(data_recipe(FolderConfig(root=str(tmp_path)), 16000).domain(), 16000, 16000, strict=True)


def test_folder_with_labels_csv(tmp_path):
    for i in range(4):
        _tone(tmp_path / f"{i}.wav", freq=200 + 100 * i)
    _write_csv(tmp_path / "labels.csv", ["path", "label", "group", "split"],
               [["0.wav", "bird", "g1", "train"], ["1.wav", "car", "g1", "train"], ["2.wav", "bird", "g2", "val"],
                ["3.wav", "car", "g2", "test"]])
    clips = load_data(FolderConfig(root=str(tmp_path), labels_csv=str(tmp_path / "labels.csv")), 16000).windows.clips
    assert clips.class_names == ["bird", "car"] and clips.labels.tolist() == [0, 1, 0, 1]
    assert clips.splits.tolist() == ["train", "train", "val", "test"] and clips.groups == ["g1", "g1", "g2", "g2"]


def test_missing_metadata_is_a_one_line_error(tmp_path):
    with pytest.raises(EdgekdError, match="metadata file not found"):
        load_data(UrbanSound8KConfig(root=str(tmp_path)), 16000)
    with pytest.raises(EdgekdError, match="folder not found"):
        load_data(FolderConfig(root=str(tmp_path / "nope")), 16000)


def _unlabelled_folder(root: Path, files: int = 6) -> dict:
    for index in range(files):
        _tone(root / f"sensor-{index % 2}" / f"{index}.wav", rate=16000, seconds=2.0, freq=300 + 50 * index)
    return {"name": "folder", "root": str(root)}


SYNTHETIC = {"name": "synthetic_urban", "clips_per_class": 3, "sample_rate": 8000}


def test_unlabelled_domain_audio_beside_a_labelled_set_is_one_dataset(tmp_path):
    alone = load_data(SYNTHETIC)
    synthetic_store = alone.student_audio.stores[0].directory
    before = sorted(p.name for p in synthetic_store.iterdir())
    data = load_data([_unlabelled_folder(tmp_path / "domain"), SYNTHETIC])
    windows = data.windows
    # the labelled set already in its store is not decoded again: listing it beside another adds nothing there
    assert sorted(p.name for p in synthetic_store.iterdir()) == before
    assert [store.directory for store in data.student_audio.stores][1] == synthetic_store
    assert len(windows.clips.ids) == 6 + 30
    assert windows.clips.ids[0].startswith("folder:sensor-0/") and windows.clips.ids[6].startswith("synthetic_urban:")
    assert windows.class_names == alone.windows.class_names
    assert (windows.clips.labels[:6] == -1).all() and (windows.clips.labels[6:] == alone.windows.clips.labels).all()
    assert not windows.fully_labelled and alone.windows.fully_labelled
    every = np.arange(len(windows))
    assert (windows.labelled_rows(every) == every[windows.clip >= 6]).all()
    # each dataset's windows read the same audio as that dataset alone
    own = every[windows.clip >= 6]
    assert np.array_equal(data.student_audio[own], alone.student_audio[np.arange(len(alone.windows))])
    assert np.abs(data.student_audio[every[windows.clip < 6]]).max() > 0.1


@pytest.mark.slow
def test_a_run_over_several_datasets_probes_on_the_labelled_one(tmp_path):
    from edgekd.stages.distill import distill

    recipe = data_recipe([_unlabelled_folder(tmp_path / "domain"), SYNTHETIC])
    metrics = distill(recipe, tmp_path / "run").metrics
    assert sum(metrics.windows.values()) == 6 * 2 + 30  # every window of both distils (2 s clips: 2 windows each)
    assert metrics.probe_metric == "accuracy" and 0 <= metrics.probe.student <= 1
    assert -1 <= metrics.fidelity["test"].cosine <= 1


@pytest.mark.parametrize("data, message", [
    ([], "key 'data' is an empty list"),
    ([SYNTHETIC, SYNTHETIC], "key 'data[1]' repeats data[0]"),
    ([SYNTHETIC, {"name": "nope"}], "key 'data[1].name': unknown data 'nope'"),
])
def test_a_bad_data_list_is_one_line_naming_the_entry(data, message):
    from edgekd.errors import RecipeError

    with pytest.raises(RecipeError, match=message.replace("[", r"\[").replace("]", r"\]")):
        data_recipe(data)


def test_an_error_in_one_of_several_datasets_names_its_entry(tmp_path):
    with pytest.raises(EdgekdError, match=r"key 'data\[1\]\.root': folder not found"):
        load_data([SYNTHETIC, {"name": "folder", "root": str(tmp_path / "missing")}])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekdError, match=r"no audio files .*\(data\[1\]: folder\)$"):
        load_data([SYNTHETIC, {"name": "folder", "root": str(tmp_path / "empty")}])
    with pytest.raises(EdgekdError, match=r"key 'data\.root': folder not found"):
        load_data({"name": "folder", "root": str(tmp_path / "missing")})


def test_labelled_datasets_listed_together_must_share_their_classes(tmp_path):
    root = tmp_path / "labelled"
    _tone(root / "a.wav", rate=16000)
    _tone(root / "b.wav", rate=16000)
    _write_csv(tmp_path / "labels.csv", ["path", "label"], [["a.wav", "bird"], ["b.wav", "car"]])
    with pytest.raises(EdgekdError, match=r"key 'data\[1\]' has classes \(bird, car, \.\.\.\) unlike data\[0\]"):
        load_data([SYNTHETIC, {"name": "folder", "root": str(root), "labels_csv": str(tmp_path / "labels.csv")}])


def test_a_method_that_needs_labels_on_partly_labelled_data_is_one_line(tmp_path):
    from edgekd.recipe import recipe_from_dict
    from edgekd.stages.distill import distill

    raw = data_recipe([_unlabelled_folder(tmp_path / "domain"), SYNTHETIC]).to_dict() | {"methods": {"kd": {}}}
    with pytest.raises(EdgekdError, match="methods.kd needs one class label per clip; the data 'folder \\+ "
                                          "synthetic_urban' has unlabelled clips beside labelled ones"):
        distill(recipe_from_dict(raw, "test.yaml"), tmp_path / "run")
    # refused before teacher inference and before the run folder exists
    assert not list((Path(os.environ["EDGEKD_CACHE_DIR"]) / "teacher").glob("*/shard-*"))
    assert not (tmp_path / "run").exists()
