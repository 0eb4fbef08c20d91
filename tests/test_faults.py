"""Fault injection: bad, hostile and broken inputs give one line and the contract's exit code, with no traceback,
and every file that existed before the command is still there, unchanged."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import yaml
from conftest import MINI_RECIPE, run_cli, run_cli_here
from onnx import TensorProto, helper


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` and a digest of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(result, code: int, *expected: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])


@pytest.fixture
def tiny_onnx(tmp_path) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


@pytest.mark.parametrize("key", ["..", ".", "../..", "teacher", "/tmp", "nonexistent", "a/../.."])
def test_cache_rm_takes_only_existing_cache_keys(tmp_path, key):
    cache = tmp_path / "cache"
    (cache / "teacher" / "0123456789abcdef0123").mkdir(parents=True)
    (cache / "teacher" / "0123456789abcdef0123" / "teacher.json").write_text("{}")
    (cache / "mine.txt").write_text("a file edgekd never wrote")
    before = _snapshot(tmp_path)
    _one_line(run_cli_here("cache", "rm", key, EDGEKD_CACHE_DIR=str(cache)), 2, "edgekd cache ls")
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("args, flag", [
    (["--max-macs", "nan"], "--max-macs"), (["--max-macs=-1"], "--max-macs"), (["--max-ram", "-5"], "--max-ram"),
    (["--max-latency-ms", "inf"], "--max-latency-ms"), (["--max-latency-ms", "5", "--runs", "0"], "--runs"),
])
def test_profile_budgets_that_cannot_judge_are_refused(tiny_onnx, args, flag):
    _one_line(run_cli_here("profile", tiny_onnx, *args), 2, flag)


@pytest.mark.parametrize("args, flag", [(["--min-cosine", "nan"], "--min-cosine"), (["--min-cosine", "2"], "--min-cosine"),
                                        (["--max-accuracy-drop", "nan"], "--max-accuracy-drop"),
                                        (["--opset", "99"], "--opset"), (["--calib", "0"], "--calib")])
def test_export_gates_that_cannot_fail_are_refused(tmp_path, args, flag):
    _one_line(run_cli_here("export", tmp_path, *args), 2, flag)


@pytest.mark.parametrize("change, key", [({"runtime": "tflite-nano"}, "runtime"), ({"ram": 0}, "ram"),
                                         ({"ram_reserve": "2MB", "ram": "1MB"}, "ram"),
                                         ({"flash_reserve": "9MB"}, "flash")])
def test_device_profiles_with_budgets_that_fit_nothing_are_refused(tiny_onnx, tmp_path, change, key):
    device = yaml.safe_load((Path(__file__).parent.parent / "devices" / "stm32h7.yaml").read_text()) | change
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(device))
    _one_line(run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0"), 2, str(path), key)


@pytest.mark.parametrize("baseline", [[1, 2], {"other.onnx": {"storage_bytes": 1}}, "not json"])
def test_a_baseline_that_cannot_judge_the_model_is_refused(tiny_onnx, tmp_path, baseline):
    (tmp_path / "edgekd.yaml").write_text(yaml.safe_dump({"checks": [{"model": tiny_onnx.name}]}))
    path = tmp_path / "baseline.json"
    path.write_text(baseline if isinstance(baseline, str) else json.dumps(baseline))
    _one_line(run_cli_here("check", "--baseline", path, "--runs", "0", cwd=tmp_path), 2, str(path))


@pytest.mark.parametrize("name", ["we[/]ird.onnx", "[bold]model.onnx", "[tool.edgekd].onnx"])
def test_paths_with_markup_characters_are_printed_as_they_are(tmp_path, name):
    _one_line(run_cli_here("profile", tmp_path / name), 2, name)


def _fake_run(folder: Path) -> dict[str, str]:
    """A finished run's files (contents need not be real: nothing may read, move or change them)."""
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    for name in ("student.pt", "checkpoint.pt", "metrics.json", "history.jsonl", "reduction.npz"):
        (folder / name).write_bytes(os.urandom(64))
    return _snapshot(folder)


@pytest.mark.parametrize("flags", [["--force"], ["--resume"], []])
def test_a_failed_distill_leaves_the_finished_run_it_would_replace(tmp_path, flags):
    run = tmp_path / "run"
    before = _fake_run(run)
    broken = tmp_path / "broken.yaml"  # valid, but its data folder does not exist: fails after validation
    broken.write_text(yaml.safe_dump(dict(MINI_RECIPE, data={"name": "folder", "root": str(tmp_path / "none")})))
    result = run_cli("distill", broken, "--out", run, *flags)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # after progress lines
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert _snapshot(run) == before
    assert not run.with_name("run.edgekd-new").exists() or not any(run.with_name("run.edgekd-new").iterdir())


def test_distill_never_writes_into_a_folder_of_the_users_own_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "recipe.yaml").write_text("my own notes, not an edgekd recipe\n")
    before = _snapshot(folder)
    recipe = tmp_path / "mini.yaml"
    recipe.write_text(yaml.safe_dump(MINI_RECIPE))
    _one_line(run_cli_here("distill", recipe, "--out", folder), 2, str(folder), "not an edgekd run")
    assert _snapshot(folder) == before


def test_a_teacher_that_outputs_nan_is_refused_and_nothing_is_cached(tmp_path):
    recipe = tmp_path / "nan.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher={"name": "python", "factory": "tiny_models:nan_embedder",
                                                                 "sample_rate": 8000})))
    cache = tmp_path / "cache"
    env = {"EDGEKD_CACHE_DIR": str(cache), "PYTHONPATH": str(Path(__file__).parent)}
    result = run_cli("distill", recipe, "--out", tmp_path / "run", **env)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "teacher 'python' gave non-finite embeddings" in errors[0]
    assert not list(cache.rglob("shard-*"))


def test_a_fifo_named_like_audio_is_skipped_not_waited_on(tmp_path):
    from edgekd.data.audio import load_clips
    from edgekd.data.configs import FolderConfig

    audio = tmp_path / "audio"
    audio.mkdir()
    soundfile.write(audio / "real.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype("float32"), 8000)
    os.mkfifo(audio / "pipe.wav")
    clips = load_clips(FolderConfig(root=str(audio)), 0, 8000)
    assert clips.ids == ["real.wav"]
    assert clips.skipped == [{"path": str(audio / "pipe.wav"), "reason": "not a regular file"}]


def _run_with(folder: Path, student: bytes) -> Path:
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    (folder / "student.pt").write_bytes(student)
    return folder


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"not a torch file at all"])
@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_a_damaged_student_is_one_line_naming_it(tmp_path, content, command):
    run = _run_with(tmp_path / "run", content)
    before = _snapshot(run)
    _one_line(run_cli_here(command, run), 2, "student.pt", "damaged")
    assert _snapshot(run) == before


@pytest.mark.parametrize("n_fft", [1_000_000, 8193])
def test_a_front_end_too_large_to_allocate_is_refused_at_validation(tmp_path, n_fft):
    recipe = tmp_path / "huge.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, student=dict(MINI_RECIPE["student"], n_fft=n_fft))))
    _one_line(run_cli_here("distill", recipe, "--out", tmp_path / "run"), 2, "student.n_fft")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("meta", ["{broken", "[]", '{"identity": 3}'])
def test_a_damaged_cache_identity_is_listed_as_unknown(tmp_path, meta):
    cache = tmp_path / "cache"
    (cache / "teacher" / "k1").mkdir(parents=True)
    (cache / "teacher" / "k1" / "teacher.json").write_text(meta)
    listed = run_cli_here("cache", "ls", EDGEKD_CACHE_DIR=str(cache))
    assert listed.returncode == 0 and "k1" in listed.stdout and "?" in listed.stdout, listed.stderr
