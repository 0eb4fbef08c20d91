"""The activation-memory walk, pinned on graphs whose peak is computed by hand."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekd.formats.memory import plan_memory
from edgekd.formats.onnx.graph import graph_run, load_model
from edgekd.profile import analyse_graph

F = 4  # bytes per float32


def _save(tmp_path, nodes, inputs, outputs, initializers=(), name="m.onnx"):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def _tensor(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_branch_peak_by_hand(tmp_path):
    # x → a = Relu(x), b = Sigmoid(x), c = Add(a, b), d = Neg(c)
    # step 0: x, a live = 2·N; step 1: x, a, b = 3·N (x dies here); step 2: a, b, c = 3·N; step 3: c, d = 2·N
    n = 1000
    path = _save(tmp_path, [
        helper.make_node("Relu", ["x"], ["a"], name="relu"),
        helper.make_node("Sigmoid", ["x"], ["b"], name="sigmoid"),
        helper.make_node("Add", ["a", "b"], ["c"], name="add"),
        helper.make_node("Neg", ["c"], ["d"], name="neg"),
    ], [_tensor("x", [1, n])], [_tensor("d", [1, n])])
    plan = plan_memory(graph_run(load_model(path), str(path), optimise=False))
    assert [s.live_bytes for s in plan.steps] == [2 * n * F, 3 * n * F, 3 * n * F, 2 * n * F]
    assert plan.peak_bytes == 3 * n * F
    assert plan.largest_tensor_bytes == n * F


def test_reshape_is_a_view_and_weights_are_not_activations(tmp_path):
    # x (1×64) → MatMul W (64×256) → y (1×256) → Reshape → z (16×16) → Relu → r
    w = numpy_helper.from_array(np.ones((64, 256), np.float32), "w")
    shape = numpy_helper.from_array(np.array([16, 16], np.int64), "shape")
    path = _save(tmp_path, [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("Reshape", ["y", "shape"], ["z"], name="reshape"),
        helper.make_node("Relu", ["z"], ["r"], name="relu"),
    ], [_tensor("x", [1, 64])], [_tensor("r", [16, 16])], [w, shape])
    plan = plan_memory(graph_run(load_model(path), str(path), optimise=False))
    # mm: x + y; reshape: y (z shares it); relu: y/z + r
    assert [s.live_bytes for s in plan.steps] == [(64 + 256) * F, 256 * F, 2 * 256 * F]
    assert plan.steps[0].macs == 64 * 256
    facts, _ = analyse_graph(path)
    assert facts.params == 64 * 256  # the int64 shape constant is not a parameter
    assert facts.macs == 64 * 256


def test_conv_macs_and_optimised_graph_fuses_batchnorm(tmp_path):
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.ones(8, np.float32), "scale"),
        numpy_helper.from_array(np.zeros(8, np.float32), "bias"),
        numpy_helper.from_array(np.zeros(8, np.float32), "mean"),
        numpy_helper.from_array(np.ones(8, np.float32), "var"),
    ]
    path = _save(tmp_path, [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], name="bn"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ], [_tensor("x", [1, 1, 10, 10])], [_tensor("y", [1, 8, 10, 10])], inits)
    raw = plan_memory(graph_run(load_model(path), str(path), optimise=False))
    fused = plan_memory(graph_run(load_model(path), str(path), optimise=True))
    conv_out = 8 * 10 * 10 * F
    assert raw.peak_bytes == 2 * conv_out  # c and b, or b and y
    assert fused.peak_bytes == 10 * 10 * F + conv_out  # one fused Conv(+BN+Relu): x and y
    assert len(fused.steps) < len(raw.steps)
    assert sum(s.macs for s in fused.steps) == 8 * 10 * 10 * 9


def test_text_file_is_rejected_cleanly(tmp_path):
    from edgekd.errors import ModelError

    bad = tmp_path / "bad.onnx"
    bad.write_text("not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        analyse_graph(bad)
