"""Quantisation past plain INT8 (issue 31): int16 activations with int8 weights (`--int16x8`, TFLM's 16x8 kernels
and onnxruntime's int16 QDQ), and each layer's precision chosen by fidelity within `--device`'s budget when INT8
misses the gate. Every file here is real: quantised by the AI Edge Quantizer, run and planned by TFLM."""

import json

import numpy as np
import pytest
import yaml
from conftest import MINI_RECIPE, one_line, run_cli_here

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
runtime = pytest.importorskip("tflite_micro").runtime

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 1-epoch mini student (its INT8 file is far from perfect: what the walk is for)."""
    folder = tmp_path_factory.mktemp("precision")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER,
                                          train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", folder / "run").returncode == 0
    return folder / "run"


def _export(run, out, *flags, formats="tflite"):
    done = run_cli_here("export", run, "--format", formats, "--no-fp16", "--out", out, *flags)
    return done, json.loads((out / "export.json").read_text())


def _variant(report, precision, suffix=".tflite"):
    (variant,) = [v for v in report["variants"] if v["precision"] == precision and v["file"].endswith(suffix)]
    return variant


@pytest.mark.slow
def test_an_int16x8_tflite_has_int16_activations_int8_weights_and_passes_its_gate_in_tflm(run, tmp_path):
    from edgekd.formats.tflite import flatbuffer

    done, report = _export(run, tmp_path, "--int16x8", "--min-cosine", "0.9", formats="onnx,tflite")
    int8, int16 = _variant(report, "int8"), _variant(report, "int16x8")
    assert done.returncode == 0 and int16["passed"], done.stderr
    onnx = _variant(report, "int16x8", ".onnx")  # int16 QDQ in onnxruntime, the front-end inside and FP32
    assert onnx["file"] == "student.int16x8.onnx" and onnx["passed"]
    int8_onnx = next(v for v in report["variants"] if v["file"].endswith("student.int8.onnx"))
    assert onnx["mean_cosine"] >= int8_onnx["mean_cosine"] - 1e-4
    path = tmp_path / int16["file"]
    assert path.name == "student.int16x8.tflite"
    interpreter = runtime.Interpreter.from_file(str(path))
    assert interpreter.get_input_details(0)["dtype"] == np.int16
    model = flatbuffer.unpack(path.read_bytes(), "test")
    graph = model.subgraphs[0]
    kinds = {flatbuffer.op_type(model, op, "test"): op for op in graph.operators}
    conv = kinds["CONV_2D"]
    types = flatbuffer.schema("test").TensorType
    assert graph.tensors[conv.inputs[0]].type == types.INT16 and graph.tensors[conv.inputs[1]].type == types.INT8
    # 16-bit activations: closer to FP32 than int8's, for about twice the planned tensors
    assert int16["mean_cosine"] > int8["mean_cosine"] and int16["tflm_arena"]["measured"]
    assert int8["tflm_arena"]["head"] < int16["tflm_arena"]["head"] <= 2 * int8["tflm_arena"]["head"] + 64
    profiled = run_cli_here("profile", path, "--device", "nrf52840", "--json")
    assert profiled.returncode == 0 and json.loads(profiled.stdout)["ram_bytes"] == int16["tflm_arena"]["total"]


def _device(tmp_path, ram: int):
    board = dict(yaml.safe_load(open("devices/nrf52840.yaml")), name="tight", ram=ram, ram_reserve=0)
    (tmp_path / "tight.yaml").write_text(yaml.safe_dump(board))
    return tmp_path / "tight.yaml"


@pytest.mark.slow
def test_the_layer_precision_walk_never_returns_a_file_over_the_devices_budget(run, tmp_path):
    """A gate only files with FP32 layers pass: without --device the walk returns one; with a device that cannot hold
    it, the walk returns no file over the budget (it keeps INT8, rejected), where an FP32 fallback would have."""
    plain, report = _export(run, tmp_path / "plain", "--int16x8", "--min-cosine", "1")
    int16 = _variant(report, "int16x8")
    # just above every all-integer file tried: the whole model at int16x8 and the INT8 file
    gate = f"{max(int16['mean_cosine'], _variant(report, 'int8')['mean_cosine']) + 2e-4:.6f}"
    free, report = _export(run, tmp_path / "free", "--min-cosine", gate)
    chosen = _variant(report, "int8+mixed")
    layers = report["layer_precision"]["student.int8.tflite"]
    assert free.returncode == 0 and chosen["passed"] and "fp32" in layers.values(), (free.stderr, report["notes"])
    arena = chosen["tflm_arena"]["total"]
    assert arena > int16["tflm_arena"]["total"]

    tight = _device(tmp_path, arena - 1)
    held, report = _export(run, tmp_path / "held", "--min-cosine", gate, "--device", tight)
    variant = next(v for v in report["variants"] if v["file"].endswith("student.int8.tflite"))
    assert variant["tflm_arena"]["total"] <= arena - 1 or not variant["passed"]
    if not variant["passed"]:  # nothing within the budget passed: INT8 kept, rejected, exit 1, said
        assert held.returncode == 1 and variant["file"] == "rejected/student.int8.tflite"
        assert any("within tight's budget" in note and "kept INT8" in note for note in report["notes"])
    roomy = _device(tmp_path, 4 << 20)
    done, report = _export(run, tmp_path / "roomy", "--min-cosine", gate, "--device", roomy)
    assert done.returncode == 0 and report["layer_precision"] == {"student.int8.tflite": layers}


def test_the_new_export_options_refuse_bad_values_in_one_line(tmp_path):
    one_line(run_cli_here("export", tmp_path, "--int16x8", "--int8", "dynamic"), 2, "--int16x8", "--int8 static")
    one_line(run_cli_here("export", tmp_path, "--int16x8", "--int8", "none"), 2, "--int16x8")
    one_line(run_cli_here("export", tmp_path, "--device", "no-such-board"), 2, "--device no-such-board", "nrf52840")
