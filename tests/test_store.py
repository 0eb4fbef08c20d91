"""The audio store: built once per clip and rate, incrementally; killed, changed and damaged builds recover."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml
from conftest import MINI_RECIPE, load_data, run_cli_here, synthetic_data

from edgekd.data import store

TESTS = Path(__file__).parent


def _folder(root: Path, count: int = 6, seconds: float = 1.5, rate: int = 8000) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        soundfile.write(root / f"{index}.wav", 0.1 * rng.standard_normal(int(seconds * rate)), rate)
    return root


def _shards(cache: Path) -> list[Path]:
    return sorted(cache.glob("audio/*/shard-*.json"))


def test_windows_are_read_at_both_rates_and_the_store_is_reused(tmp_path):
    data = synthetic_data(3)
    again = synthetic_data(3)  # nothing decoded again: same shards, same windows
    assert np.array_equal(data.teacher_audio[:], again.teacher_audio[:])
    recipe = dict(MINI_RECIPE, teacher={"name": "python", "factory": "tiny_models:tiny_embedder",
                                        "sample_rate": 16000})
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    built = run_cli_here("data", "build", tmp_path / "r.yaml", "--json", PYTHONPATH=str(TESTS))
    summary = json.loads(built.stdout)
    assert built.returncode == 0 and summary["clips"] == 40 and [s["rate"] for s in summary["stores"]] == [16000, 8000]
    assert summary["windows"] == {"train": 20, "val": 10, "test": 10} and summary["hours"] == round(40 / 3600, 4)


def test_a_changed_file_is_decoded_again_alone_and_bad_files_are_remembered(tmp_path, monkeypatch):
    root = _folder(tmp_path / "audio")
    (root / "broken.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    first = load_data({"name": "folder", "root": str(root)})
    assert len(first.windows.clips.ids) == 6 and first.skipped[0]["reason"].startswith("unreadable")
    soundfile.write(root / "3.wav", 0.2 * np.random.default_rng(1).standard_normal(12000), 8000)
    decoded = []
    monkeypatch.setattr(store, "resample", lambda audio, *rates: decoded.append(len(audio)) or audio)
    changed = load_data({"name": "folder", "root": str(root)})
    assert decoded == [12000]  # neither the other clips nor the unreadable file were decoded again
    new = json.loads(_shards(Path(os.environ["EDGEKD_CACHE_DIR"]))[-1].read_text())
    assert [clip["key"] for clip in new["clips"]] == [str(root / "3.wav")] and not new["screened"]
    rows = changed.windows.clip_ids != "3.wav"
    assert np.array_equal(changed.teacher_audio[np.flatnonzero(rows)], first.teacher_audio[np.flatnonzero(rows)])
    assert changed.skipped == first.skipped


def test_a_damaged_shard_is_detected_removed_and_rebuilt(tmp_path):
    root = _folder(tmp_path / "audio")
    first = load_data({"name": "folder", "root": str(root)}).teacher_audio[:]
    shard = _shards(Path(os.environ["EDGEKD_CACHE_DIR"]))[0].with_suffix(".npy")
    damaged = bytearray(shard.read_bytes())
    damaged[-7] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    again = load_data({"name": "folder", "root": str(root)})
    assert np.array_equal(again.teacher_audio[:], first)
    assert not shard.exists()  # removed, its clips decoded into a new shard
    assert load_data({"name": "folder", "root": str(root)}).discarded == []


def test_data_info_decodes_nothing_and_says_what_is_missing(tmp_path):
    root = _folder(tmp_path / "audio", count=20)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, data={"name": "folder", "root": str(root)})))
    info = run_cli_here("data", "info", recipe, "--json")
    summary = json.loads(info.stdout)
    assert info.returncode == 0 and summary["clips"] == 0 and not _shards(Path(os.environ["EDGEKD_CACHE_DIR"]))
    assert summary["skipped_by_reason"] == {"not in the audio store yet": 20}
    table = run_cli_here("data", "build", recipe)
    assert table.returncode == 0 and "clips" in table.stdout and "skipped" not in table.stdout


_BUILD = """
import sys
sys.path.insert(0, {tests!r})
from edgekd.data import store
store.SHARD_SAMPLES = 16000  # two clips a shard: progress to kill
from conftest import synthetic_data
data = synthetic_data({clips})
import numpy as np
np.save(sys.argv[1], data.teacher_audio[:])
"""


def _build(cache: Path, out: Path, clips: int = 60) -> subprocess.Popen:
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", _BUILD.format(tests=str(TESTS), clips=clips), str(out)], env=env)


@pytest.mark.slow
def test_killed_store_build_keeps_its_shards_and_resumes_to_identical_windows(tmp_path):
    killed = tmp_path / "killed"
    victim = _build(killed, tmp_path / "never.npy")
    deadline = time.time() + 120
    while len(_shards(killed)) < 3 and time.time() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    kept = _shards(killed)
    assert 3 <= len(kept) < 300 and not (tmp_path / "never.npy").exists()
    assert _build(killed, tmp_path / "resumed.npy").wait() == 0
    assert not list(killed.rglob("*.tmp"))  # a half-written temporary the kill left is removed by the next build
    assert set(kept) <= set(_shards(killed))  # finished shards kept, not rewritten
    assert _build(tmp_path / "clean", tmp_path / "clean.npy").wait() == 0
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "clean.npy"))


@pytest.mark.slow
def test_two_builds_of_one_store_side_by_side_store_each_clip_once(tmp_path):
    """The second build waits for the first's lock, then finds every clip stored: nothing is decoded twice."""
    cache = tmp_path / "cache"
    builds = [_build(cache, tmp_path / f"{name}.npy", clips=10) for name in ("first", "second")]
    assert [build.wait() for build in builds] == [0, 0]
    keys = [(clip["key"], store_dir.parent.name) for store_dir in _shards(cache)
            for clip in json.loads(store_dir.read_text())["clips"]]
    assert keys and len(keys) == len(set(keys))
    assert np.array_equal(np.load(tmp_path / "first.npy"), np.load(tmp_path / "second.npy"))
