"""Profiling: the four activation figures, the arena planner, published-figure cross-checks, CI outputs."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import xmlschema
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper

from edgekd.formats.memory import Buffer, greedy_arena, plan_memory
from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.graph import graph_run, load_model
from edgekd.profile import profile_model
from edgekd.render.ci import junit_xml
from edgekd.teachers.l3 import random_l3

SCHEMA = Path(__file__).parent / "data" / "junit.xsd"


def _save(path, nodes, x_shape, out_name, inits, out_shape=("n", "c", "h", "w")):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(out_shape))],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


class _Builder:
    """Small conv graphs: chains, branches and residual blocks with varied channel counts and strides."""

    def __init__(self, seed):
        self.rng, self.nodes, self.inits, self.count = np.random.default_rng(seed), [], [], 0

    def conv(self, x, c_in, c_out, stride=1):
        self.count += 1
        w = numpy_helper.from_array(self.rng.standard_normal((c_out, c_in, 3, 3)).astype(np.float32), f"w{self.count}")
        self.inits.append(w)
        out = f"c{self.count}"
        self.nodes.append(helper.make_node("Conv", [x, w.name], [out], pads=[1, 1, 1, 1], strides=[stride, stride],
                                           name=out))
        return out

    def op(self, kind, inputs, **attrs):
        self.count += 1
        out = f"{kind.lower()}{self.count}"
        self.nodes.append(helper.make_node(kind, inputs, [out], name=out, **attrs))
        return out


def _graphs(tmp_path):
    paths = []
    for seed in range(3):
        b = _Builder(seed)  # chain
        x, c = "x", 1
        for c_out, stride in zip(b.rng.integers(4, 32, 6), [1, 2, 1, 2, 1, 1]):
            x, c = b.op("Relu", [b.conv(x, c, int(c_out), stride)]), int(c_out)
        paths.append(_save(tmp_path / f"chain{seed}.onnx", b.nodes, [1, 1, 32, 32], x, b.inits))
        b = _Builder(seed)  # branches joined by Concat
        stem = b.op("Relu", [b.conv("x", 1, 8)])
        left = b.conv(b.conv(stem, 8, 16), 16, 8)
        right = b.op("MaxPool", [stem], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        joined = b.op("Concat", [left, right], axis=1)
        paths.append(_save(tmp_path / f"branch{seed}.onnx", b.nodes, [1, 1, 32, 32], b.conv(joined, 16, 4),
                           b.inits))
        b = _Builder(seed)  # residual blocks
        x = b.conv("x", 1, 16)
        for _ in range(3):
            x = b.op("Add", [x, b.conv(b.op("Relu", [b.conv(x, 16, 16)]), 16, 16)])
        paths.append(_save(tmp_path / f"residual{seed}.onnx", b.nodes, [1, 1, 24, 24], x, b.inits))
    return paths


def test_arena_plan_by_hand():
    # lifetimes (first, last) of five equal 4000-byte buffers of the branch graph in test_memory.py
    buffers = [Buffer("x", 4000, 0, 1), Buffer("a", 4000, 0, 2), Buffer("b", 4000, 1, 2), Buffer("c", 4000, 2, 3),
               Buffer("d", 4000, 3, 3)]
    assert greedy_arena(buffers) == 12000
    # TFLM's order among equal sizes: used last first, then created last: d, c, b, a, x
    assert {b.name: b.offset for b in buffers} == {"d": 0, "c": 4000, "b": 0, "a": 8000, "x": 4000}
    # a large short-lived buffer placed first leaves a hole the small ones reuse
    buffers = [Buffer("big", 10000, 0, 0), Buffer("s1", 1000, 0, 5), Buffer("s2", 3000, 1, 5)]
    assert greedy_arena(buffers) == 11008  # s1 sits above big, sizes rounded up to 16 as TFLM does; s2 reuses big's
    assert buffers[2].offset == 0


def test_arena_never_below_peak_and_close_to_it(tmp_path):
    for path in _graphs(tmp_path):
        for optimise in (False, True):
            plan = plan_memory(graph_run(load_model(path), str(path), optimise=optimise))
            assert plan.largest_tensor_bytes <= plan.working_set_bytes <= plan.peak_bytes <= plan.arena_bytes, path
            assert plan.arena_bytes <= 1.10 * plan.peak_bytes, (path.name, plan.arena_bytes, plan.peak_bytes)
            for a in plan.buffers:  # no two buffers alive together share bytes
                for b in plan.buffers:
                    if a is not b and a.first <= b.last and b.first <= a.last:
                        assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


def _network_bytes(report):
    """Weight bytes without the front-end's DFT and mel constants (the papers count the network alone)."""
    return sum(report.bytes_by_dtype.values()) - report.frontend_bytes


@pytest.fixture(scope="module")
def sea_student_3(tmp_path_factory):
    net = random_l3((32, 32, 64, 64, 128, 128, 64, 64), 8000, 1024, 160, 64)
    path = tmp_path_factory.mktemp("sea") / "sea3.onnx"
    return export_onnx(net, torch.randn(1, 8000) * 0.1, path)


@pytest.mark.slow
def test_sea_student_3_matches_published_figures(sea_student_3):
    report = profile_model(sea_student_3, latency_runs=0)
    network = report.params - report.frontend_params
    assert abs(network - 0.40e6) / 0.40e6 < 0.01, network  # SEA Table 1: 0.40 M
    assert abs(_network_bytes(report) - 1.6e6) / 1.6e6 < 0.02  # 1.6 MB FP32
    assert report.storage_bytes - report.frontend_bytes < 1.05 * _network_bytes(report)  # graph overhead < 5 %
    assert report.largest_tensor_bytes == 32 * 64 * 50 * 4 == 409_600  # the first conv's output
    assert report.largest_tensor_bytes <= report.working_set_bytes <= report.activation_bytes <= report.arena_bytes


@pytest.mark.slow
def test_l3_teacher_matches_published_figures(tmp_path):
    path = export_onnx(random_l3(), torch.randn(1, 48000) * 0.1, tmp_path / "l3.onnx")
    report = profile_model(path, latency_runs=0)
    network = report.params - report.frontend_params
    assert abs(network - 4.69e6) / 4.69e6 < 0.01, network  # L3-Net audio: 4.69 M
    assert abs(_network_bytes(report) - 18.8e6) / 18.8e6 < 0.02  # 18.8 MB FP32


@pytest.mark.slow
def test_device_checks_ops_json_junit_markdown_and_plot(sea_student_3, tmp_path):
    junit, markdown, plot = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "t.png"
    result = run_cli("profile", sea_student_3, "--device", "nrf52840", "--max-macs", "1e6", "--runs", "2", "--json",
                     "--junit", junit, "--markdown", markdown, "--plot", plot)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    failed = {c["name"] for c in data["checks"] if not c["passed"]}
    assert failed == {"ram", "flash", "macs"}  # 1.3 MB of activations in 192 KB; 6 MB file in 768 KB
    assert data["arena_bytes"] >= data["activation_bytes"] >= data["working_set_bytes"]
    assert data["measured_peak_bytes"] > 0 and data["zipped_bytes"] < data["storage_bytes"]
    xmlschema.XMLSchema(str(SCHEMA)).validate(str(junit))
    cases = xmlschema.XMLSchema(str(SCHEMA)).to_dict(str(junit))["testsuite"][0]["testcase"]
    assert len(cases) == len(data["checks"]) == 5 and sum("failure" in c for c in cases) == 3
    assert "❌" in markdown.read_text() and plot.stat().st_size > 10_000


@pytest.mark.slow
def test_unsupported_operator_is_named(tmp_path):
    path = _save(tmp_path / "erf.onnx", [helper.make_node("Erf", ["x"], ["y"], name="gelu_erf")], [1, 8], "y", [],
                 out_shape=(1, 8))
    result = run_cli("profile", path, "--device", "stm32h7", "--runs", "0")
    assert result.returncode == 1 and "Erf" in result.stderr and "gelu_erf" in result.stderr
    assert run_cli("profile", path, "--device", "raspberry-pi-4", "--runs", "0").returncode == 0


def test_dtype_a_device_cannot_compute_is_named(sea_student_3, tmp_path):
    from edgekd.formats.onnx.quantize import convert_fp16

    half = convert_fp16(sea_student_3, tmp_path / "half.onnx")
    on_mcu = profile_model(half, "esp32-s3", latency_runs=0)
    dtypes = next(c for c in on_mcu.checks if c.name == "dtypes")
    assert not dtypes.passed and dtypes.detail == "float16"
    assert next(c for c in profile_model(half, "jetson-orin-nano", latency_runs=0).checks if c.name == "dtypes").passed


def test_junit_of_passing_and_failing_reports_validates(sea_student_3):
    reports = [profile_model(sea_student_3, "raspberry-pi-4", latency_runs=0),
               profile_model(sea_student_3, "stm32h7", latency_runs=0)]
    document = junit_xml(reports)
    xmlschema.XMLSchema(str(SCHEMA)).validate(document)
    assert 'failures="0"' in document and "<failure" in document


@pytest.mark.slow
def test_check_command_with_pyproject_and_baseline(sea_student_3, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        "[tool.edgekd]\nmax_growth_percent = 5\n\n[[tool.edgekd.checks]]\n"
        f'model = "{sea_student_3}"\ndevices = ["raspberry-pi-4"]\nmax_ram = "4MB"\n')
    first = run_cli("check", "--runs", "0", "--write-baseline", tmp_path / "base.json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert run_cli("check", "--runs", "0", "--baseline", tmp_path / "base.json", cwd=tmp_path).returncode == 0
    baseline = json.loads((tmp_path / "base.json").read_text())
    baseline[str(sea_student_3)]["storage_bytes"] *= 0.5  # the model "grew" 2x since the baseline
    (tmp_path / "base.json").write_text(json.dumps(baseline))
    grown = run_cli("check", "--runs", "0", "--baseline", tmp_path / "base.json", cwd=tmp_path)
    assert grown.returncode == 1 and "growth:storage_bytes" in grown.stderr
    (tmp_path / "edgekd.yaml").write_text("checks:\n  - model: m.onnx\n    max_rams: 1KB\n")
    bad = run_cli("check", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown key 'checks.0.max_rams'" in bad.stderr
