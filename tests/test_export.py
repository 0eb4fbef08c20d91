import numpy as np
import onnx
import pytest
import torch

from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.graph import frontend_nodes
from edgekd.formats.onnx.quantize import quantize_static
from edgekd.formats.onnx.session import run_onnx
from edgekd.metrics import cosine_rows
from edgekd.students.configs import SeaCnnConfig
from edgekd.students.sea_cnn import build_sea_cnn


def _student():
    torch.manual_seed(0)
    model = build_sea_cnn(SeaCnnConfig(sample_rate=8000, n_fft=128, hop_length=160, n_mels=32, widths=[4, 8, 8]), 8)
    # non-trivial BN statistics, as after training
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    return model.eval()


def _audio(n, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 8000
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (n, 1)) * t) * rng.uniform(0.01, 0.5, (n, 1))
    return (tones + 0.02 * rng.standard_normal((n, 8000))).astype(np.float32)


@pytest.mark.slow
def test_fp32_export_matches_pytorch_with_dynamic_batch(tmp_path):
    model, audio = _student(), _audio(5)
    path = export_onnx(model, torch.from_numpy(audio[:1]), tmp_path / "s.onnx", {"sample_rate": 8000})
    onnx.checker.check_model(onnx.load(str(path)))
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["sample_rate"] == "8000"
    assert onnx.load(str(path)).opset_import[0].version == 18
    with torch.no_grad():
        ref = model(torch.from_numpy(audio)).numpy()
    out = run_onnx(path, audio)  # batch of 5, exported with batch 2
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_frontend_found_by_graph_walk_and_kept_fp32_in_int8(tmp_path):
    model = _student()
    fp32 = export_onnx(model, torch.from_numpy(_audio(1)), tmp_path / "s.onnx")
    graph = onnx.load(str(fp32))
    front = frontend_nodes(graph)
    ops = {n.name: n.op_type for n in graph.graph.node}
    assert ops[front[-1]] == "Log"
    assert {"Conv", "MatMul"} <= {ops[name] for name in front}  # the DFT conv and the mel matmul
    assert sum(ops[name] == "Conv" for name in front) == 1  # no student conv in the front-end
    int8 = quantize_static(fp32, tmp_path / "s.int8.onnx", _audio(32, seed=1))
    quantized = onnx.load(str(int8))
    producer = {o: n for n in quantized.graph.node for o in n.output}
    log = next(n for n in quantized.graph.node if n.op_type == "Log")
    # walk back from the Log: nothing on the way is quantised
    stack, seen = [log], set()
    while stack:
        node = stack.pop()
        assert node.op_type != "QuantizeLinear", node.name  # no activation is quantised on the way
        if node.op_type == "DequantizeLinear":  # only the front-end's constants, stored int8
            assert all(i.endswith(("_int8", "_scale", "_zero")) for i in node.input), node.name
        seen.add(node.name)
        stack.extend(producer[i] for i in node.input if i in producer and producer[i].name not in seen)
    assert any(n.op_type == "QuantizeLinear" for n in quantized.graph.node)
    held_out = _audio(16, seed=2)
    with torch.no_grad():
        ref = model(torch.from_numpy(held_out)).numpy()
    assert cosine_rows(run_onnx(int8, held_out), ref).mean() > 0.99
    assert cosine_rows(run_onnx(fp32, held_out), ref).mean() > 0.99999
