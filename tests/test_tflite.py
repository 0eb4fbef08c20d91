"""`edgekd export --format tflite` and `edgekd profile MODEL.tflite` (the `tflite` extra): each file runs in TFLM's
own interpreter, is gated against FP32 PyTorch, and is judged on the arena TFLM itself reports; the arena edgekd
predicts from the ONNX export is held to it. Skipped where the extra is not installed."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import MINI_RECIPE, one_line, run_cli_here

from edgekd.students.registry import STUDENTS

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_quantizer")
runtime = pytest.importorskip("tflite_micro").runtime
schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
flatbuffers = pytest.importorskip("flatbuffers")

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 1-epoch mini student exported to ONNX and .tflite (FP32 and INT8)."""
    folder = tmp_path_factory.mktemp("tflite")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", folder / "run").returncode == 0
    done = run_cli_here("export", folder / "run", "--format", "onnx,tflite", "--no-fp16", "--out", folder / "export")
    report = json.loads((folder / "export" / "export.json").read_text())
    assert done.returncode == (0 if all(v["passed"] for v in report["variants"]) else 1), done.stderr
    return folder / "export", report


def _variants(report: dict, suffix: str) -> dict:
    return {v["precision"]: v for v in report["variants"] if v["file"].endswith(suffix)}


@pytest.mark.slow
def test_tflite_export_is_gated_in_tflm_and_reports_its_arena(exported):
    from edgekd.formats.tflite.runtime import run_tflite, tflm_arena

    folder, report = exported
    variants = _variants(report, ".tflite")
    assert set(variants) == {"fp32", "int8"} and report["metadata"]["frontend"]
    fp32, int8 = (folder / variants[p]["file"] for p in ("fp32", "int8"))
    assert fp32.name == "student.tflite" and variants["fp32"]["mean_cosine"] > 0.9999 and variants["fp32"]["passed"]
    for variant, path in ((variants["fp32"], fp32), (variants["int8"], int8)):
        arena = variant["tflm_arena"]
        assert arena["total"] == arena["head"] + arena["tail"] > 0 and arena["measured"]
        assert tflm_arena(path).total == arena["total"]
    interpreter = runtime.Interpreter.from_file(str(int8))
    int8_input, output = interpreter.get_input_details(0), interpreter.get_output_details(0)
    assert int8_input["dtype"] == np.int8 and list(int8_input["shape"][1:2]) == [MINI_RECIPE["student"]["n_mels"]]
    assert output["dtype"] == np.float32  # the embedding's last operator stays FP32
    assert variants["int8"]["size_bytes"] < variants["fp32"]["size_bytes"] / 2
    assert variants["int8"]["tflm_arena"]["head"] < variants["fp32"]["tflm_arena"]["head"] / 2
    assert variants["int8"]["mean_cosine"] > 0.9  # INT8 on a 1-epoch student; the gate judges it at 0.99
    audio = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 0.1
    assert run_tflite(fp32, audio).shape == (2, MINI_RECIPE["reduction"]["dim"])


@pytest.mark.slow
def test_profile_of_the_int8_tflite_is_a_verdict_on_tflms_measured_arena(exported, tmp_path):
    folder, report = exported
    int8 = folder / _variants(report, ".tflite")["int8"]["file"]
    done = run_cli_here("profile", int8, "--device", "nrf52840", "--json")
    assert done.returncode == 0, done.stderr
    profile = json.loads(done.stdout)
    arena = profile["tflm_arena"]
    assert profile["graph"] == "tflite" and arena["measured"] and profile["fits"]
    assert profile["storage_bytes"] == int8.stat().st_size and profile["macs"] > 0
    checks = {c["name"]: c for c in profile["checks"]}
    assert checks["ram"]["actual"] == arena["total"] == profile["ram_bytes"] and checks["flash"]["passed"]
    # the planned tensors alone would fit a board whose RAM the runtime's persistent buffers overflow
    assert arena["head"] == profile["arena_bytes"] < arena["total"]
    board = dict(yaml.safe_load(open("devices/nrf52840.yaml")), name="tight", ram=arena["head"] + 1000, ram_reserve=0)
    (tmp_path / "tight.yaml").write_text(yaml.safe_dump(board))
    over = run_cli_here("profile", int8, "--device", tmp_path / "tight.yaml", "--json")
    assert over.returncode == 1 and json.loads(over.stdout)["violations"][0].startswith("ram:")


@pytest.mark.slow
def test_predicted_tflm_arena_of_the_onnx_network_is_within_2_percent_of_tflms_own(exported, tmp_path):
    """The network without its front-end, exported both ways from the distilled student (with the front-end
    inside, litert adds layout copies the ONNX graph lacks: README, TFLite Micro)."""
    from edgekd.formats.onnx.export import export_onnx
    from edgekd.formats.tflite.export import convert_tflite
    from edgekd.run_dir import RunDir
    from edgekd.students.base import Network

    student, _ = RunDir(exported[0].parent / "run").load_student()
    network = Network(student.eval())
    with torch.no_grad():
        example = student.frontend(torch.zeros(1, 8000))
    export_onnx(network, example, tmp_path / "network.onnx", {}, "input")
    convert_tflite(network, example, tmp_path / "network.tflite")
    predicted = json.loads(run_cli_here("profile", tmp_path / "network.onnx", "--device", "nrf52840", "--runs", "0",
                                        "--json").stdout)
    measured = json.loads(run_cli_here("profile", tmp_path / "network.tflite", "--json").stdout)
    assert not predicted["tflm_arena"]["measured"] and measured["tflm_arena"]["measured"]
    assert predicted["ram_bytes"] == predicted["tflm_arena"]["total"] > predicted["arena_bytes"]
    assert predicted["tflm_arena"]["head"] == measured["tflm_arena"]["head"]
    assert abs(predicted["ram_bytes"] / measured["ram_bytes"] - 1) < 0.02, (predicted["tflm_arena"],
                                                                             measured["tflm_arena"])


def _edited(source, path, edit):
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())
    return path


@pytest.mark.slow
def test_tflite_files_tflm_cannot_run_are_one_line(exported, tmp_path):
    folder, report = exported
    int8 = folder / _variants(report, ".tflite")["int8"]["file"]

    def unknown_op(model):
        model.operatorCodes[0].builtinCode = schema.BuiltinOperator.RFFT2D
        model.operatorCodes[0].deprecatedBuiltinCode = 127  # the placeholder for codes above 127

    one_line(run_cli_here("profile", _edited(int8, tmp_path / "fft.tflite", unknown_op)), 2, "fft.tflite",
             "TFLM has no kernel for RFFT2D")
    (tmp_path / "corrupt.tflite").write_bytes(b"TFL3" + b"\x00\xff" * 100)
    one_line(run_cli_here("profile", tmp_path / "corrupt.tflite"), 2, "corrupt.tflite", "no TFL3 identifier")
    (tmp_path / "corrupt.tflite").write_bytes(b"\xff\xff\x00\x00TFL3" + b"\x00\xff" * 100)
    one_line(run_cli_here("profile", tmp_path / "corrupt.tflite"), 2, "corrupt.tflite", "not a readable .tflite")
    one_line(run_cli_here("profile", int8, "--device", "raspberry-pi-4"), 2, "raspberry-pi-4", ".onnx")
    one_line(run_cli_here("profile", int8, "--max-latency-ms", "5"), 2, "--max-latency-ms")


@pytest.mark.slow
def test_a_model_larger_than_the_arena_limit_is_one_line(tmp_path, monkeypatch):
    from edgekd.formats.tflite import runtime as micro
    from edgekd.formats.tflite.export import convert_tflite

    model = convert_tflite(torch.nn.Conv2d(1, 16, 3, padding=1).eval(), torch.zeros(1, 1, 64, 64),
                           tmp_path / "conv.tflite")  # 256 kB of activations
    monkeypatch.setattr(micro, "ARENA_LIMIT", 64 << 10)
    one_line(run_cli_here("profile", model), 2, "conv.tflite", "more than the 65.54 kB arena tried")


@pytest.mark.slow
def test_weights_stored_after_the_flatbuffer_are_moved_inside_it(exported, tmp_path):
    """The AI Edge Quantizer may store buffers after the flatbuffer (offset and size): TFLM then plans those
    weights in its arena, uninitialised. Export moves them inside."""
    from edgekd.formats.tflite.export import _for_tflm
    from edgekd.formats.tflite.runtime import run_tflite, tflm_arena

    folder, report = exported
    int8 = folder / _variants(report, ".tflite")["int8"]["file"]
    source = int8.read_bytes()
    model = schema.ModelT.InitFromPackedBuf(source, 0)
    largest = max((b for b in model.buffers if b.data is not None), key=lambda b: len(b.data))
    appended = bytes(largest.data)
    largest.data, largest.size = None, len(appended)
    largest.offset = 1  # placeholder, fixed below once the flatbuffer's length is known
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    head = bytes(builder.Output())
    padding = -len(head) % 16
    largest.offset = len(head) + padding
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    outside = tmp_path / "outside.tflite"
    outside.write_bytes(bytes(builder.Output()) + bytes(padding) + appended)
    assert tflm_arena(outside).head == tflm_arena(int8).head + len(appended)  # the weights, planned as tensors
    inside = tmp_path / "inside.tflite"
    inside.write_bytes(_for_tflm(outside.read_bytes(), keep_output_quantize=False))
    assert tflm_arena(inside) == tflm_arena(int8)
    rows = np.random.default_rng(0).standard_normal((2, MINI_RECIPE["student"]["n_mels"], 51)).astype(np.float32)
    assert np.array_equal(run_tflite(inside, rows), run_tflite(int8, rows))


@pytest.mark.slow
def test_int8_of_a_network_with_weights_the_quantizer_stores_outside_runs_with_them(tmp_path):
    """sea-student-3's INT8 conv filters are large enough for the quantizer to store them after the flatbuffer:
    the exported file has them inside (TFLM plans only activations: its head is edgekd's plan of the file's own
    graph) and its last operator and output stay FP32."""
    from edgekd.formats.memory import plan_memory
    from edgekd.formats.tflite.arena import tflm_arena_bytes
    from edgekd.formats.tflite.export import convert_tflite, quantize_tflite
    from edgekd.formats.tflite.graph import read_tflite
    from edgekd.formats.tflite.runtime import run_tflite, tflm_arena
    from edgekd.students.base import Network
    from edgekd.students.registry import PRESETS, build_student

    network = Network(build_student(*PRESETS["sea-student-3"]).eval())
    with torch.no_grad():
        mel = network.student.frontend(torch.randn(8, 8000) * 0.1).numpy()
    fp32 = convert_tflite(network, torch.from_numpy(mel[:1]), tmp_path / "sea3.tflite")
    int8 = quantize_tflite(fp32, tmp_path / "sea3.int8.tflite", mel)
    model = schema.ModelT.InitFromPackedBuf(int8.read_bytes(), 0)
    assert all(b.offset == 0 for b in model.buffers)
    assert tflm_arena(int8).head == tflm_arena_bytes(plan_memory(read_tflite(int8).run).buffers)
    reference, quantised = run_tflite(fp32, mel), run_tflite(int8, mel)
    assert quantised.dtype == np.float32
    cosine = (reference * quantised).sum(1) / np.linalg.norm(reference, axis=1) / np.linalg.norm(quantised, axis=1)
    assert cosine.min() > 0.9, cosine  # random weights calibrated on 8 windows: far from garbage, not a gate
    interpreter = runtime.Interpreter.from_file(str(int8))
    assert interpreter.get_output_details(0)["dtype"] == np.float32


@pytest.mark.slow
def test_int8_output_when_asked_is_int8_and_dequantised_by_the_gate(tmp_path):
    """--int8-output: the INT8 file's output is int8 too (its scale and zero point in the file); the gate reads it
    dequantised."""
    from edgekd.formats.tflite.export import convert_tflite, quantize_tflite
    from edgekd.formats.tflite.runtime import run_tflite
    from edgekd.students.base import Network
    from edgekd.students.registry import build_student

    torch.manual_seed(0)
    network = Network(build_student(STUDENTS["sea_cnn"].config(), 16).eval())
    with torch.no_grad():
        mel = network.student.frontend(torch.randn(16, 8000) * 0.1)
        expected = network(mel).numpy()
    fp32 = convert_tflite(network, mel[:1], tmp_path / "net.tflite")
    int8 = quantize_tflite(fp32, tmp_path / "net.int8.tflite", mel.numpy(), int8_output=True)
    output = runtime.Interpreter.from_file(str(int8)).get_output_details(0)
    assert output["dtype"] == np.int8 and output["quantization_parameters"]["scales"][0] > 0
    produced = run_tflite(int8, mel.numpy())
    assert produced.dtype == np.float32
    cosine = (expected * produced).sum(1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(produced, axis=1)
    assert cosine.min() > 0.98, cosine


@pytest.mark.slow
def test_five_hundred_mutations_of_a_student_tflite_never_crash_profile_or_pass_falsely(exported, tmp_path):
    """Bytes flipped, the file cut, indices, shapes, types, data and operators changed through the flatbuffer: no
    signal-killed process, no exit 3, one error line, no negative or non-finite figure, and no pass of MAC and RAM
    budgets (half the student's own) that the unmutated file fails."""
    from fuzzing import fuzz_profile, mutated_tflite

    folder, report = exported
    student = folder / _variants(report, ".tflite")["int8"]["file"]
    own = json.loads(run_cli_here("profile", student, "--json").stdout)
    budgets = ["--max-macs", str(own["macs"] // 2), "--max-ram", str(own["ram_bytes"] // 2)]
    assert run_cli_here("profile", student, *budgets).returncode == 1
    found = fuzz_profile(student, mutated_tflite, 500, tmp_path, *budgets)
    codes = found.pop("codes")
    assert not any(found.values()), found
    assert len(codes) > 450 and codes.count(2) > 250 and codes.count(1) > 10  # refused, and profiled past the checks
