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
import torch
from conftest import load_data, run_cli, synthetic_data

from edgekd.cache import SHARD_ROWS, teacher_embeddings
from edgekd.teachers import build_teacher
from edgekd.teachers.configs import PythonTeacherConfig

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))

CPU = torch.device("cpu")


def _embed(data, teacher=None):
    return teacher_embeddings(teacher or _teacher(), data.windows, data.teacher_audio, CPU)


def _teacher(factory="tiny_models:tiny_embedder"):
    return build_teacher(PythonTeacherConfig(factory=factory, sample_rate=8000))


def test_rows_are_reused_and_a_changed_file_invalidates_only_its_rows(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(6):
        soundfile.write(tmp_path / f"{index}.wav", 0.1 * rng.standard_normal(16000), 8000)  # 2 windows each
    data = load_data({"name": "folder", "root": str(tmp_path)})
    first = _embed(data)
    assert (first.computed, first.reused) == (12, 0) and first.embeddings.dtype == np.float32
    again = _embed(load_data({"name": "folder", "root": str(tmp_path)}))
    assert (again.computed, again.reused) == (0, 12) and again.hit
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    soundfile.write(tmp_path / "4.wav", 0.05 * rng.standard_normal(16000), 8000)  # one file changed on disk
    changed_data = load_data({"name": "folder", "root": str(tmp_path)})
    changed = _embed(changed_data)
    rows = np.flatnonzero(changed_data.windows.clip_ids == "4.wav")
    assert (changed.computed, changed.reused) == (2, 10) and len(rows) == 2
    np.testing.assert_array_equal(np.delete(changed.embeddings, rows, 0), np.delete(first.embeddings, rows, 0))
    assert not np.array_equal(changed.embeddings[rows], first.embeddings[rows])
    stored = list(first.directory.glob("shard-*.npy"))
    assert stored and np.load(stored[0]).dtype == np.float16


def test_cached_rows_are_read_on_request_across_shards_like_an_array(monkeypatch):
    import edgekd.cache

    data = synthetic_data()
    monkeypatch.setattr(edgekd.cache, "SHARD_ROWS", 7)  # 30 rows in 5 shards
    rows = _embed(data).embeddings
    assert len(list(rows.shards)) == 5 and rows.shape == (30, 16) and len(rows) == 30
    whole = np.asarray(rows)
    assert whole.dtype == np.float32 and np.isfinite(whole).all() and whole.std() > 0
    order = np.random.default_rng(0).permutation(30)
    np.testing.assert_array_equal(rows[order], whole[order])
    np.testing.assert_array_equal(rows[3:19], whole[3:19])
    np.testing.assert_array_equal(rows[np.int64(8)], whole[8])
    np.testing.assert_array_equal(rows[np.array([], dtype=int)], whole[:0])
    computed = torch.cat([_teacher().embed(torch.from_numpy(data.teacher_audio[i : i + 10])) for i in (0, 10, 20)])
    np.testing.assert_allclose(whole, computed.numpy(), rtol=1e-3, atol=1e-3)  # float16 shards


@pytest.mark.slow
def test_damaged_shard_is_detected_and_recomputed():
    data = synthetic_data()
    first = _embed(data)
    first_rows = first.embeddings[:]  # read now: the damaged shard is removed
    shard = next(first.directory.glob("shard-*.npy"))
    damaged = bytearray(shard.read_bytes())
    damaged[-10] ^= 0xFF
    shard.write_bytes(bytes(damaged))
    listed = run_cli("cache", "info", first.directory.name)
    assert listed.returncode == 0 and shard.name in listed.stdout
    again = _embed(data)
    assert again.computed == 30
    np.testing.assert_allclose(again.embeddings, first_rows)


_CACHE_SCRIPT = """
import sys, numpy as np, torch
sys.path.insert(0, {tests!r})
from conftest import synthetic_data
from edgekd.cache import teacher_embeddings
from edgekd.teachers import build_teacher
from edgekd.teachers.configs import PythonTeacherConfig
data = synthetic_data(60)
teacher = build_teacher(PythonTeacherConfig(factory="tiny_models:slow_embedder", sample_rate=8000))
result = teacher_embeddings(teacher, data.windows, data.teacher_audio, torch.device("cpu"))
np.save(sys.argv[1], result.embeddings)
print(result.computed, result.reused)
"""


def _cache_run(cache: Path, out: Path, **kwargs):
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(cache))
    return subprocess.Popen([sys.executable, "-c", _CACHE_SCRIPT.format(tests=str(TESTS)), str(out)], env=env,
                            stdout=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_killed_while_caching_then_rerun_gives_identical_rows(tmp_path):
    killed_cache = tmp_path / "killed"
    victim = _cache_run(killed_cache, tmp_path / "never.npy")
    deadline = time.time() + 120
    while not list(killed_cache.glob("teacher/*/shard-*.json")) and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "never.npy").exists()
    kept = len(list(killed_cache.glob("teacher/*/shard-*.json")))
    assert 1 <= kept < 600 / SHARD_ROWS  # killed part-way

    resumed = _cache_run(killed_cache, tmp_path / "resumed.npy")
    computed, reused = map(int, resumed.communicate()[0].split())
    assert reused == kept * SHARD_ROWS and computed == 600 - reused
    clean = _cache_run(tmp_path / "clean", tmp_path / "clean.npy")
    clean.communicate()
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "clean.npy"))


@pytest.mark.slow
def test_cache_commands(tmp_path, monkeypatch):
    cache = str(tmp_path / "c")
    monkeypatch.setenv("EDGEKD_CACHE_DIR", cache)
    result = _embed(synthetic_data())
    listed = run_cli("cache", "ls", EDGEKD_CACHE_DIR=cache)
    assert listed.returncode == 0 and result.directory.name in listed.stdout and "python" in listed.stdout
    info = run_cli("cache", "info", result.directory.name, EDGEKD_CACHE_DIR=cache)
    assert json.loads(info.stdout)["rows"] == 30
    assert run_cli("cache", "rm", "nope", EDGEKD_CACHE_DIR=cache).returncode == 2
    removed = run_cli("cache", "rm", result.directory.name, EDGEKD_CACHE_DIR=cache)
    assert removed.returncode == 0 and not result.directory.exists()


@pytest.mark.slow
def test_torchrun_two_processes_share_the_rows_and_match_one_process(tmp_path):
    import shutil

    import yaml
    from conftest import MINI_RECIPE

    recipe = tmp_path / "mini.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, data=dict(MINI_RECIPE["data"], clips_per_class=30))))
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(tmp_path / "two"), OMP_NUM_THREADS="1")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "edgekd", "cache", "build",
                          str(recipe)], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "300 rows computed" in two.stdout
    one = run_cli("cache", "build", recipe, EDGEKD_CACHE_DIR=str(tmp_path / "one"))
    assert one.returncode == 0 and "300 rows computed" in one.stdout
    shards_two = sorted((tmp_path / "two").glob("teacher/*/shard-*.json"))
    assert len(shards_two) == 2  # 300 rows: one shard of 256 from rank 0, one of 44 from rank 1
    from edgekd.cache import read_shards

    rows_two, _ = read_shards(shards_two[0].parent)
    rows_one, _ = read_shards(next((tmp_path / "one").glob("teacher/*")))
    assert set(rows_two) == set(rows_one)
    for key in rows_one:
        np.testing.assert_array_equal(rows_one[key][0][rows_one[key][1]], rows_two[key][0][rows_two[key][1]])
