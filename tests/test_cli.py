"""Each command end to end through the real CLI, on a miniature recipe (40 one-second clips, CREPE tiny)."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import MINI_RECIPE, run_cli, run_cli_here

from edgekd.errors import EdgekdError

JSON_KEYS = {"model", "params", "storage_bytes", "activation_bytes", "macs", "latency_ms", "device", "fits",
             "violations"}


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """One distillation shared by the tests below, with a teacher cache of its own."""
    folder = tmp_path_factory.mktemp("e2e")
    recipe = folder / "mini.yaml"
    recipe.write_text(yaml.safe_dump(MINI_RECIPE))
    cache = str(folder / "cache")
    run_dir = folder / "run"
    first = run_cli("distill", recipe, "--out", run_dir, EDGEKD_CACHE_DIR=cache)
    return recipe, run_dir, first, cache


@pytest.mark.slow
def test_distill_writes_the_run_and_reports_teacher_vs_student(distilled):
    _, run_dir, result, _ = distilled
    assert result.returncode == 0, result.stderr
    for name in ("student.pt", "reduction.npz", "recipe.yaml", "metrics.json", "history.jsonl",
                 "training_curves.png", "checkpoint.pt"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["teacher"]["cache"]["computed"] == 40 and metrics["teacher"]["cache"]["reused"] == 0
    assert metrics["windows"] == {"train": 20, "val": 10, "test": 10}
    assert metrics["student"]["storage_bytes"] < metrics["teacher"]["storage_bytes"]
    assert 0 <= metrics["probe"]["student"] <= 1 and 0 <= metrics["probe"]["teacher"] <= 1
    assert -1 <= metrics["fidelity"]["test"]["cosine"] <= 1
    assert "teacher vs student" in result.stdout and "probe accuracy" in result.stdout
    assert "cached teacher embeddings in" in result.stderr
    # off a terminal (a CI log, a pipe) the bars are not drawn: a line per epoch and per tenth of teacher inference
    epochs = [line for line in result.stderr.splitlines() if line.startswith("· epoch ")]
    assert [line.split()[2] for line in epochs] == ["1/2", "2/2"] and all("loss" in line for line in epochs)
    assert "· teacher inference: 40/40 windows" in result.stderr


@pytest.mark.slow
def test_second_run_reuses_the_teacher_cache_and_refuses_to_overwrite(distilled):
    recipe, run_dir, _, cache = distilled
    refused = run_cli_here("distill", recipe, "--out", run_dir, EDGEKD_CACHE_DIR=cache)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    assert (run_dir / "student.pt").is_file()  # nothing already written is lost
    again = run_cli_here("distill", recipe, "--out", run_dir.parent / "run2", EDGEKD_CACHE_DIR=cache)
    assert again.returncode == 0, again.stderr
    assert "reused cached teacher embeddings" in again.stderr
    cache_use = json.loads((run_dir.parent / "run2" / "metrics.json").read_text())["teacher"]["cache"]
    assert cache_use["computed"] == 0 and cache_use["reused"] == 40
    # same recipe, same seed → same result on CPU
    first = json.loads((run_dir / "metrics.json").read_text())["fidelity"]
    second = json.loads((run_dir.parent / "run2" / "metrics.json").read_text())["fidelity"]
    assert first == second


@pytest.mark.slow
def test_export_and_profile(distilled):
    _, run_dir, _, _ = distilled
    # 20 held-out windows: one flipped prediction is 5 points, so this test gates on cosine alone
    exported = run_cli_here("export", run_dir, "--calib", "16", "--max-accuracy-drop", "100", "--min-cosine", "0.95")
    assert exported.returncode == 0, exported.stderr
    fp32, int8 = run_dir / "export" / "student.onnx", run_dir / "export" / "student.int8.onnx"
    assert fp32.is_file() and int8.is_file() and (run_dir / "export" / "student.fp16.onnx").is_file()
    report = json.loads((run_dir / "export" / "export.json").read_text())
    variants = {v["precision"]: v for v in report["variants"]}
    assert variants["fp32"]["mean_cosine"] > 0.9999 and variants["int8"]["mean_cosine"] > 0.95
    assert variants["fp16"]["mean_cosine"] > 0.999 and report["reference_accuracy"] is not None
    props = {p.key: p.value for p in __import__("onnx").load(str(fp32)).metadata_props}
    assert props["sample_rate"] == "8000" and json.loads(props["frontend"])["in_graph"] is True
    assert {"window_seconds", "embedding_dim", "teacher", "recipe_digest", "edgekd_version",
            "fidelity_at_export"} <= set(props)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert json.loads(props["teacher"])["embedding_dim"] == metrics["teacher"]["dim"]

    fits = run_cli_here("profile", int8, "--device", "stm32h7", "--runs", "3")
    assert fits.returncode == 0, fits.stderr
    assert "fits" in fits.stdout

    over = run_cli_here("profile", int8, "--device", "stm32h7", "--max-ram", "1KB", "--runs", "0")
    assert over.returncode == 1
    assert "over budget" in over.stderr and "ram: " in over.stderr and "--max-ram" in over.stderr

    as_json = run_cli_here("profile", int8, "--device", "stm32h7", "--json", "--runs", "2")
    data = json.loads(as_json.stdout)
    assert JSON_KEYS <= set(data) and data["fits"] is True and data["violations"] == []
    assert data["device"] == "stm32h7" and data["latency_ms"] > 0 and data["macs"] > 0
    assert data["knowledge_base_bytes"] == 0  # no retrieval base in a plain student


def _props(path: Path) -> dict:
    return {p.key: p.value for p in __import__("onnx").load(str(path)).metadata_props}


@pytest.mark.slow
def test_calibration_methods_frontend_constants_and_the_raw_graph(distilled, tmp_path):
    _, run_dir, _, _ = distilled
    gate = ("--no-fp16", "--calib", "16", "--max-accuracy-drop", "100", "--min-cosine", "0.9")
    for method in ("entropy", "percentile"):
        result = run_cli_here("export", run_dir, "--out", tmp_path / method, "--calib-method", method, *gate)
        assert result.returncode == 0, result.stderr
        assert _props(tmp_path / method / "student.int8.onnx")["calibration"] == method
    fp32_constants = run_cli_here("export", run_dir, "--out", tmp_path / "fp32c", "--frontend-constants", "fp32", *gate)
    assert fp32_constants.returncode == 0, fp32_constants.stderr
    int8_file, fp32c_file = tmp_path / "entropy" / "student.int8.onnx", tmp_path / "fp32c" / "student.int8.onnx"
    assert _props(fp32c_file)["frontend_constants"] == "fp32"
    profiled = {name: json.loads(run_cli_here("profile", path, "--json", "--runs", "0").stdout)
                for name, path in (("int8", int8_file), ("fp32", fp32c_file))}
    # int8-stored DFT/mel constants: less flash, expanded in RAM at run time; FP32 ones: the other way round
    assert profiled["int8"]["storage_bytes"] < profiled["fp32"]["storage_bytes"]
    assert profiled["int8"]["constant_ram_bytes"] > 100 * max(1, profiled["fp32"]["constant_ram_bytes"])
    raw = json.loads(run_cli_here("profile", fp32c_file, "--json", "--runs", "0", "--raw").stdout)
    assert raw["graph"] == "raw" and profiled["fp32"]["graph"] == "optimised"
    # the graph as exported keeps every Q/DQ pair apart: more live memory than onnxruntime's fused graph
    assert raw["activation_bytes"] > profiled["fp32"]["activation_bytes"]


@pytest.mark.slow
def test_profile_bad_inputs_exit_2_with_one_line(tmp_path):
    text = tmp_path / "notes.onnx"
    text.write_text("this is a text file\n")
    for args in ([text], [tmp_path / "missing.onnx"], [text, "--device", "toaster"], [text, "--max-ram", "lots"]):
        result = run_cli_here("profile", *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.slow
def test_export_of_a_folder_that_is_not_a_run(tmp_path):
    result = run_cli_here("export", tmp_path)
    assert result.returncode == 2 and "not a run directory" in result.stderr


@pytest.mark.slow
def test_distill_unlabelled_domain_audio_with_a_python_teacher(tmp_path):
    """SEA's case: a sensor network's recordings with no labels, and a teacher the user brings."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(0)
    for sensor in ("s1", "s2"):
        for i in range(12):
            t = np.arange(16000 * 2) / 16000
            audio = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(len(t))
            (tmp_path / "audio" / sensor).mkdir(parents=True, exist_ok=True)
            soundfile.write(str(tmp_path / "audio" / sensor / f"{i}.wav"), audio, 16000)
    (tmp_path / "audio" / "s1" / "broken.wav").write_bytes(b"not audio")
    recipe = dict(MINI_RECIPE, data={"name": "folder", "root": str(tmp_path / "audio")},
                  teacher={"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000},
                  window={"seconds": 1.0, "hop_seconds": 0.5})
    path = tmp_path / "sensors.yaml"
    path.write_text(yaml.safe_dump(recipe))
    tests = str(Path(__file__).parent)
    result = run_cli("distill", path, "--out", tmp_path / "run", PYTHONPATH=tests)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unusable audio file" in result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "probe" not in metrics and metrics["skipped_audio"][0]["reason"].startswith("unreadable")
    assert sum(metrics["windows"].values()) == 24 * 3  # 2 s files, 1 s windows every 0.5 s
    strict = run_cli("distill", path, "--out", tmp_path / "strict", "--strict", PYTHONPATH=tests)
    assert strict.returncode == 2 and "broken.wav" in strict.stderr


@pytest.mark.slow
def test_export_options_and_the_accuracy_gate(distilled, tmp_path):
    import onnx

    _, run_dir, _, _ = distilled
    excluded = run_cli_here("export", run_dir, "--out", tmp_path / "ex", "--frontend", "exclude", "--no-fp16",
                       "--int8", "dynamic", "--max-accuracy-drop", "100", "--min-cosine", "0.9")
    assert excluded.returncode == 0, excluded.stderr
    assert "dynamic INT8 on a convolutional student" in excluded.stderr
    model = onnx.load(str(tmp_path / "ex" / "student.onnx"))
    assert model.graph.input[0].name == "logmel" and not any(n.op_type == "Log" for n in model.graph.node)
    frontend = json.loads({p.key: p.value for p in model.metadata_props}["frontend"])
    assert frontend["in_graph"] is False and frontend["n_mels"] == 32 and frontend["n_fft"] == 128
    assert (tmp_path / "ex" / "student.int8-dynamic.onnx").is_file()
    strict = run_cli_here("export", run_dir, "--out", tmp_path / "strict", "--no-fp16", "--no-fallback",
                     "--min-cosine", "0.9999999", "--max-accuracy-drop", "100")
    assert strict.returncode == 1 and "accuracy gate failed" in strict.stderr and "mean cosine" in strict.stderr
    assert (tmp_path / "strict" / "rejected" / "student.int8.onnx").is_file()  # kept to inspect, reported failing
    assert not (tmp_path / "strict" / "student.int8.onnx").exists()  # never under the name a deployment takes
    bad = run_cli_here("export", run_dir, "--int8", "int4")
    assert bad.returncode == 2 and "'int4' is not one of 'static', 'dynamic', 'none'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_torchrun_ddp_two_processes_match_one_process(tmp_path):
    """DistributedDataParallel over 2 CPU processes (gloo) reaches the same validation fidelity as one process."""
    import os
    import shutil
    import subprocess
    import sys

    recipe = tmp_path / "mini.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, train=dict(MINI_RECIPE["train"], epochs=3))))
    cache = str(tmp_path / "cache")
    single = run_cli("distill", recipe, "--out", tmp_path / "one", EDGEKD_CACHE_DIR=cache)
    assert single.returncode == 0, single.stderr
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = dict(os.environ, EDGEKD_CACHE_DIR=cache, OMP_NUM_THREADS="1", COLUMNS="200")
    double = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "edgekd", "distill",
                             str(recipe), "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                            timeout=600)
    assert double.returncode == 0, double.stderr[-3000:]
    assert double.stdout.count("teacher vs student") == 1  # rank 0 reports, once
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["fidelity"]["val"]["cosine"]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())["fidelity"]["val"]["cosine"]
    assert abs(one - two) <= 1e-3, (one, two)


@pytest.mark.slow
def test_evaluate_in_and_out_of_domain(distilled, tmp_path):
    """Out-of-domain data given by a data-only YAML, held-out data of the domain by another; fidelity on every window
    of other data (the run's own: its test split), probes beside a log-mel baseline."""
    recipe, run_dir, _, cache = distilled
    other = tmp_path / "noisy.yaml"
    other.write_text(yaml.safe_dump({"data": dict(MINI_RECIPE["data"], snr_db=[-10, -5])}))  # data alone
    same = tmp_path / "same.yaml"
    same.write_text(yaml.safe_dump({"data": dict(MINI_RECIPE["data"], clips_per_class=3),
                                    "window": MINI_RECIPE["window"]}))
    result = run_cli_here("evaluate", run_dir, "--data", other, "--same-domain", same, "--logmel-baseline",
                     EDGEKD_CACHE_DIR=cache)
    assert result.returncode == 0, result.stderr
    report = json.loads((run_dir / "evaluation.json").read_text())
    assert set(report["out_of_domain"]) == {str(other)} and set(report["held_out_in_domain"]) == {str(same)}
    own, outside = report["in_domain"], report["out_of_domain"][str(other)]
    assert own["fidelity_windows"] < own["windows"] and outside["fidelity_windows"] == outside["windows"]
    for column in (own, outside, report["held_out_in_domain"][str(same)]):
        assert {"cosine", "r2", "cka", "mse"} <= set(column["fidelity"])
        assert {"logreg_accuracy", "mlp_accuracy", "logreg_macro_f1"} <= set(column["student"])
        assert set(column["teacher"]) == set(column["student"]) == set(column["logmel_baseline"])
    assert "out of domain: noisy.yaml" in result.stdout and "in domain: same.yaml" in result.stdout
    assert [line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("· evaluating")] == [
        "· evaluating in domain (test split)", "· evaluating in domain", "· evaluating out of domain"]
    sea = run_cli_here("evaluate", run_dir, "--protocol", "sea", EDGEKD_CACHE_DIR=cache)
    assert sea.returncode == 0, sea.stderr
    clip_scored = json.loads((run_dir / "evaluation-sea.json").read_text())
    assert clip_scored["protocol"] == "sea" and json.loads((run_dir / "evaluation.json").read_text()) == report
    assert "evaluation-sea.json" in sea.stdout and "mlp_accuracy" in clip_scored["in_domain"]["student"]
    assert not clip_scored["in_domain"]["logmel_baseline"] and "log-mel" not in sea.stdout  # not asked for


def test_evaluate_checks_every_dataset_before_any_work(tmp_path, monkeypatch):
    """A bad --data was reported after the in-domain evaluation (79 s of work, nothing saved)."""
    import edgekd.stages.evaluate as evaluate

    monkeypatch.setattr(evaluate, "evaluate_dataset", lambda *args, **kwargs: pytest.fail("evaluated first"))
    monkeypatch.setattr(evaluate.RunDir, "load_student", lambda self: (None, _mini_recipe_object()))
    monkeypatch.setattr(evaluate.RunDir, "load_reduction", lambda self: None)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"window": {"seconds": 1.0}}))
    with pytest.raises(EdgekdError, match="bad.yaml: missing key 'data'"):
        evaluate.evaluate_run(tmp_path, [str(bad)])
    with pytest.raises(EdgekdError, match="--same-domain nowhere: not a folder"):
        evaluate.evaluate_run(tmp_path, [], ["nowhere"])


def test_evaluate_data_is_a_folder_a_data_section_or_a_recipe(tmp_path):
    import numpy as np
    import soundfile

    from edgekd.recipe import load_evaluation_data

    (tmp_path / "clips").mkdir()
    soundfile.write(tmp_path / "clips" / "a.wav", np.zeros(800, np.float32), 8000)
    (tmp_path / "clips" / "labels.csv").write_text("path,label\na.wav,dog\n")
    folder = load_evaluation_data(str(tmp_path / "clips"))
    assert folder.data[0].name == "folder" and folder.data[0].labels_csv.endswith("labels.csv") and not folder.window
    section = tmp_path / "data.yaml"
    section.write_text(yaml.safe_dump({"data": MINI_RECIPE["data"], "window": {"seconds": 0.5}}))
    assert load_evaluation_data(str(section)).window.seconds == 0.5
    assert load_evaluation_data("demo").data[0].name == "synthetic_urban"


def _mini_recipe_object():
    from edgekd.recipe import recipe_from_dict

    return recipe_from_dict(MINI_RECIPE, "mini.yaml")


@pytest.mark.slow
def test_interrupted_distill_resumes_with_its_epoch_log(tmp_path):
    """Killed during training, `--resume` continues from the last checkpoint; the JSON-lines log covers every epoch
    and the result equals an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = tmp_path / "mini.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, train=dict(MINI_RECIPE["train"], epochs=40))))
    cache = str(tmp_path / "cache")
    whole = run_cli("distill", recipe, "--out", tmp_path / "whole", EDGEKD_CACHE_DIR=cache)
    assert whole.returncode == 0, whole.stderr
    env = dict(os.environ, EDGEKD_CACHE_DIR=cache)
    victim = subprocess.Popen([sys.executable, "-m", "edgekd", "distill", str(recipe), "--out", str(tmp_path / "cut")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = tmp_path / "cut" / "history.jsonl"
    deadline = time.time() + 120
    while (not log.is_file() or len(log.read_text().splitlines()) < 3) and time.time() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done = len(log.read_text().splitlines())
    assert 3 <= done < 40 and not (tmp_path / "cut" / "metrics.json").exists()
    resumed = run_cli("distill", recipe, "--out", tmp_path / "cut", "--resume", EDGEKD_CACHE_DIR=cache)
    assert resumed.returncode == 0, resumed.stderr
    epochs = [json.loads(line)["epoch"] for line in log.read_text().splitlines()]
    assert epochs == list(range(1, 41))
    first = json.loads((tmp_path / "whole" / "metrics.json").read_text())["fidelity"]
    second = json.loads((tmp_path / "cut" / "metrics.json").read_text())["fidelity"]
    assert first == second
