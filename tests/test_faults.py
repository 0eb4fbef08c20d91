"""Fault injection: bad, hostile and broken inputs give one line and the contract's exit code, with no traceback,
and every file that existed before the command is still there, unchanged."""

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import yaml
from conftest import MINI_RECIPE, one_line, run_cli, run_cli_here, snapshot
from onnx import TensorProto, helper

from edgekd.errors import EdgekdError
from edgekd.extras import EXTRAS, install_command
from edgekd.formats.options import ExportOptions
from edgekd.formats.registry import FORMATS
from edgekd.students import STUDENTS


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
    before = snapshot(tmp_path)
    one_line(run_cli_here("cache", "rm", key, EDGEKD_CACHE_DIR=str(cache)), 2, "edgekd cache ls")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("args, flag", [
    (["--max-macs", "nan"], "--max-macs"), (["--max-macs=-1"], "--max-macs"), (["--max-ram", "-5"], "--max-ram"),
    (["--max-latency-ms", "inf"], "--max-latency-ms"), (["--max-latency-ms", "5", "--runs", "0"], "--runs"),
])
def test_profile_budgets_that_cannot_judge_are_refused(tiny_onnx, args, flag):
    one_line(run_cli_here("profile", tiny_onnx, *args), 2, flag)


@pytest.mark.parametrize("args, flag", [(["--min-cosine", "nan"], "--min-cosine"), (["--min-cosine", "2"], "--min-cosine"),
                                        (["--max-accuracy-drop", "nan"], "--max-accuracy-drop"),
                                        (["--opset", "99"], "--opset"), (["--opset", "7"], "--opset"),
                                        (["--calib", "0"], "--calib"), (["--int8", "int4"], "--int8"),
                                        (["--format", "coreml"], "--format"), (["--format", "onnx,onnx"], "--format")])
def test_export_gates_that_cannot_fail_are_refused(tmp_path, args, flag):
    one_line(run_cli_here("export", tmp_path, *args), 2, flag)


@pytest.mark.parametrize("missing, format, extra", [
    (module, format, entry.extra) for format, entry in FORMATS.items() if entry.extra for module in EXTRAS[entry.extra]])
def test_a_format_without_its_extra_is_one_line_naming_the_install_command(tmp_path, monkeypatch, missing, format,
                                                                           extra):
    for name in [missing, *(name for name in sys.modules if name.startswith(f"{missing}."))]:
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed: importing it raises ImportError
    one_line(run_cli_here("export", tmp_path, "--format", f"onnx,{format}"), 2, f"--format {format}",
             install_command(extra))
    if missing == "tflite_micro":
        (tmp_path / "model.tflite").write_bytes(b"TFL3")
        one_line(run_cli_here("profile", tmp_path / "model.tflite"), 2, "model.tflite", "pip install 'edgekd[tflite]'")


@pytest.mark.parametrize("family", STUDENTS)
def test_a_format_a_family_cannot_export_is_refused_before_any_work(family):
    """A format the family lacks, or lacks in INT8 (the transformer's .pte), is one line naming the flag and the
    way out; what the family declares passes."""
    from edgekd.stages.export import _check_formats

    config = STUDENTS[family].config()
    for format in FORMATS:
        for int8 in ("static", "none"):
            options = ExportOptions(formats=(format,), int8=int8)
            allowed = format in config.formats and (int8 == "none" or format in config.int8_formats)
            if allowed:
                _check_formats(options, config)
                continue
            with pytest.raises(EdgekdError, match=f"--format {format}: a {family} student exports to") as refused:
                _check_formats(options, config)
            assert "\n" not in str(refused.value)
            assert format in config.formats or "only (see `edgekd students`)" in str(refused.value)
            assert format not in config.formats or "add --int8 none" in str(refused.value)


@pytest.mark.parametrize("change, key", [({"runtime": "tflite-nano"}, "runtime"), ({"ram": 0}, "ram"),
                                         ({"ram_reserve": "2MB", "ram": "1MB"}, "ram"),
                                         ({"flash_reserve": "9MB"}, "flash")])
def test_device_profiles_with_budgets_that_fit_nothing_are_refused(tiny_onnx, tmp_path, change, key):
    device = yaml.safe_load((Path(__file__).parent.parent / "devices" / "stm32h7.yaml").read_text()) | change
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(device))
    one_line(run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0"), 2, str(path), key)


@pytest.mark.parametrize("baseline", [[1, 2], {"other.onnx": {"storage_bytes": 1}}, "not json"])
def test_a_baseline_that_cannot_judge_the_model_is_refused(tiny_onnx, tmp_path, baseline):
    (tmp_path / "edgekd.yaml").write_text(yaml.safe_dump({"checks": [{"model": tiny_onnx.name}]}))
    path = tmp_path / "baseline.json"
    path.write_text(baseline if isinstance(baseline, str) else json.dumps(baseline))
    one_line(run_cli_here("check", "--baseline", path, "--runs", "0", cwd=tmp_path), 2, str(path))


@pytest.mark.parametrize("name", ["we[/]ird.onnx", "[bold]model.onnx", "[tool.edgekd].onnx"])
def test_paths_with_markup_characters_are_printed_as_they_are(tmp_path, name):
    one_line(run_cli_here("profile", tmp_path / name), 2, name)


def _fake_run(folder: Path) -> dict[str, str]:
    """A finished run's files (contents need not be real: nothing may read, move or change them)."""
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    for name in ("student.pt", "checkpoint.pt", "metrics.json", "history.jsonl", "reduction.npz"):
        (folder / name).write_bytes(os.urandom(64))
    return snapshot(folder)


@pytest.mark.slow
@pytest.mark.parametrize("flags", [["--force"], ["--resume"], []])
def test_a_failed_distill_leaves_the_finished_run_it_would_replace(tmp_path, flags):
    run = tmp_path / "run"
    before = _fake_run(run)
    broken = tmp_path / "broken.yaml"  # valid, but its data folder does not exist: fails after validation
    broken.write_text(yaml.safe_dump(dict(MINI_RECIPE, data={"name": "folder", "root": str(tmp_path / "none")})))
    result = run_cli("distill", broken, "--out", run, *flags)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]  # after progress lines
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert snapshot(run) == before
    assert not run.with_name("run.edgekd-new").exists() or not any(run.with_name("run.edgekd-new").iterdir())


def test_distill_never_writes_into_a_folder_of_the_users_own_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "recipe.yaml").write_text("my own notes, not an edgekd recipe\n")
    before = snapshot(folder)
    recipe = tmp_path / "mini.yaml"
    recipe.write_text(yaml.safe_dump(MINI_RECIPE))
    one_line(run_cli_here("distill", recipe, "--out", folder), 2, str(folder), "not an edgekd run")
    assert snapshot(folder) == before


@pytest.mark.slow
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
    assert not list(cache.glob("teacher/*/shard-*"))


def test_a_fifo_named_like_audio_is_skipped_not_waited_on(tmp_path):
    from conftest import load_data

    audio = tmp_path / "audio"
    audio.mkdir()
    soundfile.write(audio / "real.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype("float32"), 8000)
    os.mkfifo(audio / "pipe.wav")
    data = load_data({"name": "folder", "root": str(audio)})
    assert data.windows.clips.ids == ["real.wav"]
    assert data.skipped == [{"path": str(audio / "pipe.wav"), "reason": "not a regular file"}]


def _run_with(folder: Path, student: bytes) -> Path:
    folder.mkdir()
    (folder / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    (folder / "student.pt").write_bytes(student)
    return folder


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"not a torch file at all"])
@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_a_damaged_student_is_one_line_naming_it(tmp_path, content, command):
    run = _run_with(tmp_path / "run", content)
    before = snapshot(run)
    one_line(run_cli_here(command, run), 2, "student.pt", "damaged")
    assert snapshot(run) == before


@pytest.mark.parametrize("n_fft", [1_000_000, 8193])
def test_a_front_end_too_large_to_allocate_is_refused_at_validation(tmp_path, n_fft):
    recipe = tmp_path / "huge.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, student=dict(MINI_RECIPE["student"], n_fft=n_fft))))
    one_line(run_cli_here("distill", recipe, "--out", tmp_path / "run"), 2, "student.n_fft")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("meta", ["{broken", "[]", '{"identity": 3}'])
def test_a_damaged_cache_identity_is_listed_as_unknown(tmp_path, meta):
    cache = tmp_path / "cache"
    (cache / "teacher" / "k1").mkdir(parents=True)
    (cache / "teacher" / "k1" / "teacher.json").write_text(meta)
    listed = run_cli_here("cache", "ls", EDGEKD_CACHE_DIR=str(cache))
    assert listed.returncode == 0 and "k1" in listed.stdout and "?" in listed.stdout, listed.stderr


# --- recipes: every command that takes one refuses a bad one before any work, naming the key ---------------------

def _with(section: str, **change) -> dict:
    return dict(MINI_RECIPE, **{section: dict(MINI_RECIPE[section], **change)})


BAD_RECIPES = {
    "epochs-true": (_with("train", epochs=True), "train"),
    "epochs-zero": (_with("train", epochs=0), "train.epochs"),
    "lr-text": (_with("train", lr="fast"), "train.lr"),
    "batch-negative": (_with("train", batch_size=-1), "train.batch_size"),
    "unknown-top-key": (dict(MINI_RECIPE, optimiser="adam"), "optimiser"),
    "unknown-nested-key": (_with("student", widthz=[4]), "widthz"),
    "unknown-teacher": (dict(MINI_RECIPE, teacher={"name": "gpt"}), "teacher"),
    "unknown-data": (dict(MINI_RECIPE, data={"name": "imagenet"}), "data"),
    "unknown-student": (dict(MINI_RECIPE, student={"name": "resnet9000"}), "student"),
    "dim-zero": (_with("reduction", dim=0), "reduction.dim"),
    "window-zero": (_with("window", seconds=0), "window.seconds"),
    "min-fraction-above-one": (_with("window", min_fraction=2), "window.min_fraction"),
    "n-mels-true": (_with("student", n_mels=True), "student"),
    "unknown-method": (dict(MINI_RECIPE, methods={"magic": {}}), "magic"),
    "section-a-list": (dict(MINI_RECIPE, train=[1, 2]), "train"),
}


@pytest.mark.parametrize("command", [["distill"], ["cache", "build"], ["tune"]])
@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_a_bad_recipe_is_refused_before_any_work(tmp_path, case, command):
    recipe, key = BAD_RECIPES[case]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    before = snapshot(tmp_path)
    one_line(run_cli_here(*command, path, cwd=tmp_path), 2, str(path), key)
    assert snapshot(tmp_path) == before  # no run folder, no cache, nothing written


@pytest.mark.parametrize("content, expected", [
    ("name: [unclosed", "not valid YAML"), ("", "mapping"), ("- a\n- b\n", "mapping"),
    (b"\xff\xfe\x00garbage", "cannot read"), (None, "not found"),
])
def test_a_recipe_file_that_is_not_a_recipe_is_one_line(tmp_path, content, expected):
    path = tmp_path / "recipe.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = run_cli_here("distill", path, cwd=tmp_path)
    one_line(result, 2, "recipe.yaml")
    assert expected in result.stderr.lower() or expected in result.stderr


# --- model files: profile and check answer any file in one line, and never wait on a special file ----------------

def _bad_model(folder: Path, kind: str) -> Path:
    path = folder / "model.onnx"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(os.urandom(256))
    elif kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "missing":
        pass
    else:
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
                                  [onnx.numpy_helper.from_array(np.ones((64, 64), np.float32), "w")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        if kind == "truncated":
            path.write_bytes(model.SerializeToString()[:100])
        elif kind == "no-nodes":
            del model.graph.node[:]
            path.write_bytes(model.SerializeToString())
        elif kind == "external-data-missing":
            onnx.save(model, str(path), save_as_external_data=True, location="model.onnx.data", size_threshold=0)
            (folder / "model.onnx.data").unlink()
        elif kind == "unknown-op":
            model.graph.node[0].op_type = "NoSuchOp"
            path.write_bytes(model.SerializeToString())
    return path


MODEL_FAULTS = ["empty", "garbage", "text", "directory", "fifo", "missing", "truncated", "no-nodes",
                "external-data-missing", "unknown-op"]


@pytest.mark.parametrize("kind", MODEL_FAULTS)
def test_profile_of_a_file_that_is_not_a_usable_model_is_one_line(tmp_path, kind):
    path = _bad_model(tmp_path, kind)
    before = snapshot(tmp_path) if kind != "fifo" else None
    one_line(run_cli_here("profile", path, "--runs", "0"), 2, str(path))
    if before is not None:
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", MODEL_FAULTS)
def test_check_of_a_config_naming_a_bad_model_is_one_line(tmp_path, kind):
    path = _bad_model(tmp_path, kind)
    (tmp_path / "edgekd.yaml").write_text(yaml.safe_dump({"checks": [{"model": path.name, "devices": ["stm32h7"]}]}))
    one_line(run_cli_here("check", "--runs", "0", cwd=tmp_path), 2, path.name)


def test_profile_counts_external_data_so_a_flash_budget_cannot_pass_falsely(tmp_path):
    path = _bad_model(tmp_path, "external")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 512])],
                              [onnx.numpy_helper.from_array(np.ones((256, 512), np.float32), "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path),
              save_as_external_data=True, location="weights.bin", size_threshold=0)
    for flags in ([], ["--raw"]):
        result = run_cli_here("profile", path, "--runs", "0", "--max-flash", "1KB", "--json", *flags)
        assert result.returncode == 1, result.stderr
        assert json.loads(result.stdout)["storage_bytes"] >= 256 * 512 * 4


@pytest.mark.parametrize("flags, code", [(["--runs", "0"], 0), (["--device", "stm32h7", "--runs", "0"], 1),
                                         (["--max-latency-ms", "5"], 2)])
def test_a_model_declaring_a_huge_input_is_answered_from_its_shapes_at_once(tmp_path, flags, code):
    path = tmp_path / "huge.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1_000_000_000])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1_000_000_000])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    result = run_cli_here("profile", path, "--json", *flags)
    assert result.returncode == code, result.stderr
    if code != 2:
        assert json.loads(result.stdout)["activation_bytes"] == 8_000_000_000
        assert json.loads(result.stdout)["graph"] == "static"
    else:
        one_line(result, 2, "--max-latency-ms")


# --- run directories: export and evaluate answer a missing or damaged run in one line -----------------------------

def _run_folder(folder: Path, fault: str) -> Path:
    folder.mkdir()
    if fault == "empty":
        return folder
    recipe = {"recipe-yaml-broken": "name: [", "recipe-yaml-list": "- 1\n", "recipe-unknown-key":
              yaml.safe_dump(dict(MINI_RECIPE, extra=1))}.get(fault, yaml.safe_dump(MINI_RECIPE))
    (folder / "recipe.yaml").write_text(recipe)
    if fault == "student-of-another-shape":
        import torch

        from edgekd.recipe import recipe_from_dict
        from edgekd.students import build_student

        other = recipe_from_dict(_with("student", widths=[8, 16, 16]), "x")
        net = build_student(other.student, 8)
        torch.save({"state_dict": net.state_dict(), "embedding_dim": 8, "student": {}, "head": None},
                   folder / "student.pt")
    return folder


RUN_FAULTS = ["missing", "empty", "recipe-yaml-broken", "recipe-yaml-list", "recipe-unknown-key", "no-student",
              "student-of-another-shape"]


@pytest.mark.parametrize("fault", RUN_FAULTS)
@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_a_missing_or_damaged_run_is_one_line_and_left_as_it_was(tmp_path, fault, command):
    run = tmp_path / "run"
    if fault != "missing":
        _run_folder(run, fault)
    before = snapshot(tmp_path)
    one_line(run_cli_here(command, run), 2, str(run))
    assert snapshot(tmp_path) == before


# --- device profiles and CI configs -------------------------------------------------------------------------------

@pytest.mark.parametrize("device, key", [
    ({"name": "x", "ram": "-1KB"}, "ram"), ("- a list\n", "mapping"), ({"ram": "lots"}, "ram"),
    ({"threads": True}, "threads"), ({"surprise": 1}, "surprise"), ({"dtypes": ["int3"]}, "dtypes"),
])
def test_a_bad_device_profile_is_one_line_naming_it(tiny_onnx, tmp_path, device, key):
    base = yaml.safe_load((Path(__file__).parent.parent / "devices" / "stm32h7.yaml").read_text())
    path = tmp_path / "device.yaml"
    path.write_text(device if isinstance(device, str) else yaml.safe_dump(base | device))
    one_line(run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0"), 2, str(path), key)


@pytest.mark.parametrize("config, expected", [
    ("checks: [", "not valid YAML"), ({"checks": "model.onnx"}, "checks"), ({"checks": [{"devices": ["stm32h7"]}]},
                                                                             "model"),
    ({"checks": [{"model": "tiny.onnx", "devices": ["toaster"]}]}, "toaster"),
    ({"checks": [{"model": "tiny.onnx", "max_ram": "nan"}]}, "max_ram"),
    ({"checks": [{"model": "tiny.onnx", "max_macs": True}]}, "max_macs"),
    ({"checks": [{"model": "../../etc/passwd"}]}, "passwd"),
])
def test_a_bad_ci_config_is_one_line_naming_it(tiny_onnx, config, expected):
    path = tiny_onnx.parent / "edgekd.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    one_line(run_cli_here("check", "--runs", "0", cwd=tiny_onnx.parent), 2, expected)


# --- teachers the user brings: refused in one line naming the file or factory, nothing cached --------------------

def _precomputed(folder: Path, fault: str) -> Path:
    from conftest import load_data

    windows = load_data(MINI_RECIPE["data"]).windows
    ids, starts = np.asarray(windows.clip_ids), windows.starts
    vectors = np.random.default_rng(0).standard_normal((len(ids), 8)).astype(np.float32)
    if fault == "nan":
        vectors[3, 2] = np.nan
    elif fault == "one-dimensional":
        vectors = vectors[:, 0]
    elif fault == "too-few-rows":
        ids, starts, vectors = ids[:5], starts[:5], vectors[:5]
    elif fault == "mismatched-lengths":
        vectors = vectors[:-1]
    path = folder / "embeddings.npz"
    np.savez(path, clip_ids=ids, starts=starts, embeddings=vectors)
    return path


def _onnx_teacher(folder: Path, fault: str) -> Path:
    kind, shape = {"int64-input": (TensorProto.INT64, [1, 8000]), "rank-5": (TensorProto.FLOAT, [1, 1, 1, 1, 8000]),
                   "wrong-fixed-length": (TensorProto.FLOAT, [1, 123])}[fault]
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="id")], "g",
                              [helper.make_tensor_value_info("x", kind, shape)],
                              [helper.make_tensor_value_info("y", kind, shape)])
    path = folder / "teacher.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


TEACHER_FAULTS = {
    "precomputed-nan": lambda f: ({"name": "precomputed", "path": str(_precomputed(f, "nan"))}, "NaN"),
    "precomputed-1d": lambda f: ({"name": "precomputed", "path": str(_precomputed(f, "one-dimensional"))}, "2-D"),
    "precomputed-few": lambda f: ({"name": "precomputed", "path": str(_precomputed(f, "too-few-rows"))},
                                  "no embedding"),
    "precomputed-lengths": lambda f: ({"name": "precomputed", "path": str(_precomputed(f, "mismatched-lengths"))},
                                      "rows"),
    "onnx-int64": lambda f: ({"name": "onnx", "path": str(_onnx_teacher(f, "int64-input")), "sample_rate": 8000},
                             "float32"),
    "onnx-rank-5": lambda f: ({"name": "onnx", "path": str(_onnx_teacher(f, "rank-5")), "sample_rate": 8000},
                              "rank 5"),
    "onnx-fixed-length": lambda f: ({"name": "onnx", "path": str(_onnx_teacher(f, "wrong-fixed-length")),
                                     "sample_rate": 8000, "input_samples": 8000}, "teacher.onnx"),
    "factory-not-a-module": lambda f: ({"name": "python", "factory": "tiny_models:not_a_module",
                                        "sample_rate": 8000}, "torch.nn.Module"),
    "factory-bad-kwargs": lambda f: ({"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000,
                                      "kwargs": {"width": 3}}, "teacher.kwargs"),
    "factory-flat-output": lambda f: ({"name": "python", "factory": "tiny_models:flat_embedder",
                                       "sample_rate": 8000}, "(batch, dim)"),
    "factory-missing": lambda f: ({"name": "python", "factory": "tiny_models:nothing_here", "sample_rate": 8000},
                                  "nothing_here"),
    "torchscript-garbage": lambda f: ({"name": "torchscript", "path": str(_garbage(f / "t.pt")),
                                       "sample_rate": 8000}, "t.pt"),
}


def _garbage(path: Path) -> Path:
    path.write_bytes(os.urandom(128))
    return path


@pytest.mark.parametrize("case", sorted(TEACHER_FAULTS))
def test_a_teacher_that_cannot_teach_is_one_line_and_nothing_is_cached(tmp_path, case):
    teacher, expected = TEACHER_FAULTS[case](tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=teacher)))
    cache = tmp_path / "cache"
    one_line(run_cli_here("distill", recipe, "--out", tmp_path / "run", EDGEKD_CACHE_DIR=str(cache)), 2, expected)
    assert not (tmp_path / "run").exists() and not list(cache.glob("teacher/*/shard-*"))


# --- audio screening ------------------------------------------------------------------------------------------------

def test_clips_shorter_than_the_window_fraction_are_skipped_and_counted(tmp_path):
    from edgekd.data.windows import Clips, make_windows

    rate = 8000
    lengths = np.asarray([1, 800, 3999, 4000, 8000, 8000 + 3000, 8000 + 5000])
    clips = Clips([f"c{i}" for i in range(len(lengths))], lengths / rate, None, [], np.asarray(["train"] * 7))
    windows, skipped = make_windows(clips, 1.0, None, 0.5, rate)
    # 1 sample, 0.1 s and 0.4999 s skipped; 0.5 s is one window; 1.375 s drops its 0.375 s tail; 1.625 s keeps it
    assert [s["path"] for s in skipped] == ["c0", "c1", "c2"]
    assert windows.clip_ids.tolist() == ["c3", "c4", "c5", "c6", "c6"]
    assert "window.min_fraction" in skipped[0]["reason"]


def test_no_windows_left_says_how_many_files_were_skipped_and_why(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for index in range(6):
        soundfile.write(audio / f"click{index}.wav", np.ones(80, np.float32) * 0.5, 8000)  # 0.01 s each
    (audio / "broken.wav").write_bytes(b"RIFF not really")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, data={"name": "folder", "root": str(audio)})))
    one_line(run_cli_here("distill", recipe, "--out", tmp_path / "run"), 2, "7 file(s) skipped",
             "6 shorter than window.min_fraction", "1 unreadable")


# --- the teacher cache: rows counted only when verified, damaged shards removed with a notice ----------------------

def test_cache_ls_says_whether_rows_are_verified_and_a_damaged_shard_is_removed_on_reuse(tmp_path, mini_recipe):
    cache = tmp_path / "cache"
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher={"name": "python", "factory": "tiny_models:tiny_embedder",
                                                                "sample_rate": 8000})))
    env = {"EDGEKD_CACHE_DIR": str(cache)}
    assert run_cli_here("cache", "build", recipe, **env).returncode == 0
    shard = next(cache.glob("teacher/*/shard-*.npy"))
    shard.write_bytes(shard.read_bytes()[:-16] + b"\x00" * 16)  # same size, wrong bytes
    plain = run_cli_here("cache", "ls", **env)
    assert "not verified" in plain.stdout
    verified = run_cli_here("cache", "ls", "--verify", **env)
    assert "1 damaged shard" in verified.stdout, verified.stdout
    rebuilt = run_cli_here("cache", "build", recipe, **env)
    assert rebuilt.returncode == 0 and "removed 1 damaged shard" in rebuilt.stderr, rebuilt.stderr
    assert not shard.exists()
    assert "verified" in run_cli_here("cache", "ls", "--verify", **env).stdout


# --- a hostile user's battery (issue 28): each case failed on 8037ad4 -------------------------------------------------

def _fc_tflite(path: Path, change=lambda model: None) -> Path:
    """A one-operator FULLY_CONNECTED .tflite (16 → 8, FP32) built through TFLite's schema; `change` edits the model
    before it is written, as a hostile file would differ."""
    pytest.importorskip("tflite_micro")
    from edgekd.formats.tflite import flatbuffer

    schema = flatbuffer.schema("a test")
    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT() for _ in range(3)]
    model.buffers[1].data = np.frombuffer(np.ones((8, 16), np.float32).tobytes(), np.uint8)
    model.buffers[2].data = np.frombuffer(np.zeros(8, np.float32).tobytes(), np.uint8)
    tensors = []
    for name, shape, buffer in (("x", [1, 16], 0), ("w", [8, 16], 1), ("b", [8], 2), ("y", [1, 8], 0)):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name.encode(), shape, schema.TensorType.FLOAT32, buffer
        tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators = tensors, [0], [3], [op]
    model.subgraphs = [graph]
    change(model)
    path.write_bytes(flatbuffer.pack(model, "a test"))
    return path


def _tensor(index: int, **fields):
    def change(model):
        for key, value in fields.items():
            setattr(model.subgraphs[0].tensors[index], key, value)
    return change


def _operator(**fields):
    def change(model):
        for key, value in fields.items():
            setattr(model.subgraphs[0].operators[0], key, value)
    return change


def _huge(model):  # the shapes of issue 28: ~2^68 MACs, which int64 arithmetic turned negative
    tensors = model.subgraphs[0].tensors
    tensors[0].shape, tensors[3].shape = [1, 2**31 - 1, 2**31 - 1, 16], [1, 2**31 - 1, 2**31 - 1, 8]


HOSTILE_TFLITE = {
    "buffer-out-of-range": (_tensor(1, buffer=99), "buffer 99"),  # was SIGSEGV in TFLM
    "input-out-of-range": (_operator(inputs=[0, 1, 7]), "tensor 7"),
    "opcode-out-of-range": (_operator(opcodeIndex=5), "opcode 5"),
    "negative-shape": (_tensor(0, shape=[-5, -1, 0]), "dimension -5"),
    "huge-shape": (_huge, "bytes"),  # was −2,473.9 G MACs, and --max-macs passed
    "weights-shorter-than-shape": (_tensor(1, shape=[8, 32]), "bytes of data"),
    "output-not-what-inputs-give": (_tensor(3, shape=[1, 9]), "output shape"),
    "not-tflite": (lambda model: setattr(model, "version", 2), "schema version"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TFLITE))
def test_a_hostile_tflite_is_refused_in_one_line_before_any_runtime_sees_it(tmp_path, case):
    change, expected = HOSTILE_TFLITE[case]
    path = _fc_tflite(tmp_path / "model.tflite", change)
    before = snapshot(tmp_path)
    one_line(run_cli_here("profile", path, "--max-macs", "1e6", "--json"), 2, str(path), expected)
    assert snapshot(tmp_path) == before


def test_a_tflite_is_known_by_its_identifier_not_only_its_suffix(tmp_path):
    valid = _fc_tflite(tmp_path / "model.TFLITE")
    result = run_cli_here("profile", valid, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["graph"] == "tflite" and json.loads(result.stdout)["macs"] == 8 * 16
    (tmp_path / "other.tflite").write_bytes(b"\x1c\x00\x00\x00ONNX" + bytes(64))
    one_line(run_cli_here("profile", tmp_path / "other.tflite"), 2, "other.tflite", "TFL3")


def test_a_crash_inside_tflm_is_one_line_not_a_dead_process(tmp_path, monkeypatch):
    """What passes edgekd's checks runs in TFLM in a child process: a kernel that crashes there is the file's fault."""
    import edgekd.formats.tflite.runtime as micro

    def crash(path):
        os.kill(os.getpid(), 11)

    monkeypatch.setattr(micro, "tflm_arena", crash)
    path = _fc_tflite(tmp_path / "model.tflite")
    one_line(run_cli_here("profile", path), 2, str(path), "TFLM crashed", "SIGSEGV")


RECIPE_TEXT_FAULTS = {
    "nested-20000-deep": ("name: deep\ndata: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested too deeply"),
    "seed-29-digits": ("seed: 12345678901234567890123456789\n", "seed"),
    "lr-infinite": ("train: {lr: 1.0e+309}\n", "train.lr"),
    "lr-nan": ("train: {lr: .nan}\n", "train.lr"),
    "clips-1e11": ("data: {name: synthetic_urban, clips_per_class: 100000000000}\n", "data.clips_per_class"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(RECIPE_TEXT_FAULTS))
def test_values_that_passed_validation_then_crashed_are_refused_at_load(tmp_path, case):
    text, key = RECIPE_TEXT_FAULTS[case]
    base = {k: v for k, v in MINI_RECIPE.items() if not text.startswith(f"{k}:") and k not in text.split(":")[0]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(base) + text)
    before = snapshot(tmp_path)
    one_line(run_cli_here("distill", path, "--out", tmp_path / "run", cwd=tmp_path), 2, str(path), key)
    assert snapshot(tmp_path) == before


def test_a_device_size_of_5000_digits_is_one_line(tiny_onnx, tmp_path):
    base = (Path(__file__).parent.parent / "devices" / "stm32h7.yaml").read_text()
    path = tmp_path / "device.yaml"
    path.write_text("\n".join(f"ram: {'5' * 5000}" if line.startswith("ram:") else line for line in base.splitlines()))
    one_line(run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0"), 2, str(path))
    path.write_text(base.replace("ram:", "ram: 99999999999999999999999999 #"))
    one_line(run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0"), 2, str(path), "ram")


def test_a_rule_across_device_keys_names_them_not_an_empty_key(tiny_onnx, tmp_path):
    device = yaml.safe_load((Path(__file__).parent.parent / "devices" / "stm32h7.yaml").read_text())
    path = tmp_path / "device.yaml"
    path.write_text(yaml.safe_dump(device | {"ram_reserve": "2MB", "ram": "1MB"}))
    result = run_cli_here("profile", tiny_onnx, "--device", path, "--runs", "0")
    one_line(result, 2, str(path), "'ram'", "'ram_reserve'")
    assert "key ''" not in result.stderr


@pytest.mark.parametrize("command", [["distill", "{recipe}"], ["tune", "{recipe}"], ["export", "{folder}"],
                                     ["search", "{recipe}", "--device", "nrf52840"]])
def test_an_out_naming_an_existing_file_is_refused_and_the_file_kept(tmp_path, command):
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    target = tmp_path / "notes.txt"
    target.write_text("my notes")
    before = snapshot(tmp_path)
    args = [a.format(recipe=tmp_path / "recipe.yaml", folder=tmp_path) for a in command]
    one_line(run_cli_here(*args, "--out", target), 2, "--out", str(target))
    assert snapshot(tmp_path) == before


def test_every_help_text_shows_install_commands_as_the_code_states_them():
    """Rich markup took `[tflite]` in `pip install 'edgekd[tflite]'` for a tag and printed `pip install 'edgekd'`."""
    import re

    from edgekd.cli import app

    commands = ["--help", *(f"{info.name or info.callback.__name__} --help" for info in app.registered_commands)]
    printed = {command: run_cli_here(*command.split(), COLUMNS="400").stdout for command in commands}
    stated = {install_command(extra) for extra in EXTRAS}
    for command, text in printed.items():
        for shown in re.findall(r"pip install '[^']*'", " ".join(text.split())):
            assert any(full.startswith(shown) for full in stated), (command, shown)  # never `edgekd` alone
    assert install_command("tflite") in " ".join(printed["export --help"].split())
    assert install_command("executorch") in " ".join(printed["export --help"].split())


def test_every_default_a_help_text_states_is_shown():
    """Rich markup took `[default: RUN_DIR/export]` for a tag and dropped it from `--help`: every option's stated
    default is shown."""
    import re

    import typer

    from edgekd.cli import app

    for info in app.registered_commands:
        name = info.name or info.callback.__name__
        printed = " ".join(run_cli_here(name, "--help", COLUMNS="400").stdout.split())
        params = typer.main.get_command(app).commands[name].params
        for stated in (fragment.removeprefix("\\") for param in params if getattr(param, "help", None)
                       for fragment in re.findall(r"\\?\[default: [^\]]*\]", param.help)):
            assert " ".join(stated.split()) in printed, (name, stated)


def test_an_empty_label_is_an_unlabelled_clip_not_a_class(tmp_path):
    from edgekd.data.configs import FolderConfig
    from edgekd.data.layouts import folder_clips

    for name in ("a.wav", "b.wav", "c.wav"):
        soundfile.write(tmp_path / name, np.zeros(800, np.float32), 8000)
    (tmp_path / "labels.csv").write_text("path,label\na.wav,dog\nb.wav,\nc.wav,  \n")
    catalogue = folder_clips(FolderConfig(root=str(tmp_path), labels_csv=str(tmp_path / "labels.csv")), 0)
    assert catalogue.class_names == ["dog"] and [s.label for s in catalogue.sources] == [0, -1, -1]
    (tmp_path / "labels.csv").write_text("path,label\na.wav,\nb.wav,\n")
    catalogue = folder_clips(FolderConfig(root=str(tmp_path), labels_csv=str(tmp_path / "labels.csv")), 0)
    assert catalogue.class_names == [] and all(s.label is None for s in catalogue.sources)


def test_cache_listings_do_not_follow_a_link_into_a_users_folder(tmp_path):
    cache, mine = tmp_path / "cache", tmp_path / "mine"
    (cache / "teacher").mkdir(parents=True)
    mine.mkdir()
    (mine / "teacher.json").write_text(json.dumps({"identity": {"teacher": "mine"}, "dim": 4}))
    (mine / "shard-0.npy").write_bytes(b"my own data")
    (cache / "teacher" / "linked").symlink_to(mine)
    (cache / "teacher" / "a-file").write_text("not a cache")
    before = snapshot(mine)
    listed = run_cli_here("cache", "ls", "--verify", "--json", EDGEKD_CACHE_DIR=str(cache))
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout + listed.stderr
    one_line(run_cli_here("cache", "info", "linked", EDGEKD_CACHE_DIR=str(cache)), 2, "linked")
    assert snapshot(mine) == before


def test_a_run_folder_of_an_earlier_layout_is_read(tmp_path):
    """A run distilled before `data:` lost its sample_rate (e032d78) keeps its recipe: read without the removed key,
    with the same digest as the recipe written today."""
    from edgekd.recipe import recipe_from_dict
    from edgekd.run_dir import RunDir

    audio = tmp_path / "audio"
    audio.mkdir()
    soundfile.write(audio / "a.wav", np.zeros(8000, np.float32), 8000)
    today = dict(MINI_RECIPE, data={"name": "folder", "root": str(audio)})
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(yaml.safe_dump(dict(today, data=dict(today["data"], sample_rate=16000))))
    with pytest.raises(EdgekdError, match="data.sample_rate"):
        recipe_from_dict(yaml.safe_load((run / "recipe.yaml").read_text()), "recipe.yaml")  # a recipe today: refused
    assert RunDir(run).recipe().digest() == recipe_from_dict(today, "today.yaml").digest()
    one_line(run_cli_here("export", run), 2, "student.pt")  # past the recipe, to what the fake run lacks


def test_a_study_db_that_is_not_a_study_is_one_line_and_kept(tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    out = tmp_path / "search"
    out.mkdir()
    (out / "study.db").write_bytes(b"my own file, not SQLite" * 8)
    before = snapshot(tmp_path)
    one_line(run_cli_here("search", tmp_path / "recipe.yaml", "--device", "nrf52840", "--out", out), 2,
             "study.db", "--out")
    assert snapshot(tmp_path) == before


def test_an_empty_rank_on_folder_is_refused_before_any_candidate_trains(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    import edgekd.stages.search as search

    def never(*args, **kwargs):
        raise AssertionError("a candidate trained before --rank-on was checked")

    monkeypatch.setattr(search, "distill", never)
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(MINI_RECIPE))
    (tmp_path / "empty").mkdir()
    one_line(run_cli_here("search", tmp_path / "recipe.yaml", "--device", "nrf52840", "--out", tmp_path / "out",
                          "--rank-on", tmp_path / "empty"), 2, "--rank-on", "no audio files")
    assert not (tmp_path / "out").exists()
