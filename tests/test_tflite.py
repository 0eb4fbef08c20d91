"""`edgekd export --format tflite` (the `tflite` extra): each file runs in TFLM's own interpreter, is gated against
FP32 PyTorch and reports TFLM's arena. Skipped where the extra is not installed."""

import json

import numpy as np
import pytest
import yaml
from conftest import MINI_RECIPE, run_cli_here

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
runtime = pytest.importorskip("tflite_micro").runtime

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}


@pytest.mark.slow
def test_tflite_export_is_gated_in_tflm_and_reports_its_arena(tmp_path):
    from edgekd.tflite import run_tflite, tflm_arena

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", tmp_path / "run").returncode == 0
    done = run_cli_here("export", tmp_path / "run", "--format", "tflite", "--out", tmp_path / "export")
    report = json.loads((tmp_path / "export" / "export.json").read_text())
    variants = {v["precision"]: v for v in report["variants"]}
    assert done.returncode == (0 if all(v["passed"] for v in variants.values()) else 1), done.stderr
    assert set(variants) == {"fp32", "int8"} and report["metadata"]["frontend"]
    fp32, int8 = (tmp_path / "export" / variants[p]["file"] for p in ("fp32", "int8"))
    assert fp32.name == "student.tflite" and variants["fp32"]["mean_cosine"] > 0.9999 and variants["fp32"]["passed"]
    for variant, path in ((variants["fp32"], fp32), (variants["int8"], int8)):
        arena = variant["tflm_arena"]
        assert arena["total"] == arena["head"] + arena["tail"] > 0
        assert tflm_arena(path).total == arena["total"]
    int8_input = runtime.Interpreter.from_file(str(int8)).get_input_details(0)
    assert int8_input["dtype"] == np.int8 and list(int8_input["shape"][1:2]) == [MINI_RECIPE["student"]["n_mels"]]
    assert variants["int8"]["size_bytes"] < variants["fp32"]["size_bytes"] / 2
    assert variants["int8"]["tflm_arena"]["head"] < variants["fp32"]["tflm_arena"]["head"] / 2
    assert variants["int8"]["mean_cosine"] > 0.9  # INT8 on a 1-epoch student; the gate judges it at 0.99
    audio = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    assert run_tflite(fp32, audio).shape == (2, MINI_RECIPE["reduction"]["dim"])


def test_a_file_tflm_cannot_load_is_one_line(tmp_path):
    from edgekd.errors import EdgekdError
    from edgekd.tflite import run_tflite

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"TFL3" + bytes(100))
    with pytest.raises(EdgekdError, match="broken.tflite: TFLM cannot run it"):
        run_tflite(broken, np.zeros((1, 8000), np.float32))
