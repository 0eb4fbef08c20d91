"""Quantised variants: size and fidelity on the demo student, FP16, and the mixed-precision fallback."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.quantize import (
    convert_fp16,
    mixed_precision_fallback,
    quantize_static,
)
from edgekd.formats.onnx.session import run_onnx
from edgekd.frontend import FrontendSpec, LogMel
from edgekd.metrics import cosine_rows
from edgekd.recipe import load_recipe
from edgekd.students import build_student


def _audio(n, seed=0, samples=8000):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (n, 1)) * t) * rng.uniform(0.02, 0.5, (n, 1))
    return (tones + 0.03 * rng.standard_normal((n, samples))).astype(np.float32)


@pytest.fixture(scope="module")
def demo_variants(tmp_path_factory):
    """The demo student (random weights) exported FP32, FP16 and INT8, INT8 calibrated over every level tested."""
    folder = tmp_path_factory.mktemp("levels")
    recipe = load_recipe("demo")
    torch.manual_seed(0)
    student = build_student(recipe.student, recipe.reduction.dim).eval()
    fp32 = export_onnx(student, torch.from_numpy(_audio(1)), folder / "s.onnx")
    calibration = np.concatenate([_audio(16, seed=1) / 0.5 * level for level in LEVELS.values()])
    return student, {"fp32": fp32, "fp16": convert_fp16(fp32, folder / "s.fp16.onnx"),
                     "int8": quantize_static(fp32, folder / "s.int8.onnx", calibration)}


LEVELS = {"silent-ish": 1e-4, "quiet": 0.01, "loud": 0.9}  # peak amplitude of the test windows


@pytest.mark.slow
@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_every_precision_keeps_the_embedding_of_quiet_loud_and_silent_ish_audio(demo_variants, precision, level):
    """FP16 once lost quiet audio (mean cosine 0.92 on real city recordings): its mel power underflowed."""
    student, variants = demo_variants
    audio = _audio(16, seed=3) / 0.5 * LEVELS[level]
    with torch.no_grad():
        reference = student(torch.from_numpy(audio)).numpy()
    assert cosine_rows(run_onnx(variants[precision], audio), reference).min() > 0.99


@pytest.mark.slow
def test_demo_student_int8_is_3_5x_smaller_with_cosine_above_0_99(tmp_path):
    recipe = load_recipe("demo")
    torch.manual_seed(0)
    student = build_student(recipe.student, recipe.reduction.dim).eval()
    fp32 = export_onnx(student, torch.from_numpy(_audio(1)), tmp_path / "s.onnx")
    int8 = quantize_static(fp32, tmp_path / "s.int8.onnx", _audio(64, seed=1))
    half = convert_fp16(fp32, tmp_path / "s.fp16.onnx")
    ratio = fp32.stat().st_size / int8.stat().st_size
    assert ratio >= 3.5, ratio
    held_out = _audio(32, seed=2)
    with torch.no_grad():
        reference = student(torch.from_numpy(held_out)).numpy()
    assert cosine_rows(run_onnx(int8, held_out), reference).mean() >= 0.99
    assert cosine_rows(run_onnx(half, held_out), reference).mean() >= 0.999
    types = {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in onnx.load(str(half)).graph.initializer}
    assert "float16" in types
    props = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert props["precision"] == "int8" and props["activations"] == "uint8"


class Fragile(nn.Module):
    """One layer whose output has a channel 1000x larger than the rest: per-tensor activation quantisation of that
    tensor wipes out the small channels, so the embedding collapses unless the consumer stays FP32."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.frontend = LogMel(FrontendSpec(8000, 128, 160, 16))
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 8, 3, padding=1)
        with torch.no_grad():
            self.conv2.weight[0] *= 1000.0  # the outlier channel
            self.conv3.weight[:, 0] /= 1000.0  # ...which the next layer scales back

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(self.frontend(audio)[:, None] / 40.0))
        x = self.conv3(torch.relu(self.conv2(x)))
        return x.mean(dim=(2, 3))


@pytest.mark.slow
def test_fragile_model_fails_the_gate_and_the_fallback_keeps_one_layer_fp32(tmp_path):
    model = Fragile().eval()
    fp32 = export_onnx(model, torch.from_numpy(_audio(1)), tmp_path / "f.onnx")
    calib, held_out = _audio(32, seed=3), _audio(32, seed=4)
    with torch.no_grad():
        reference = model(torch.from_numpy(held_out)).numpy()

    def gate(path):
        return cosine_rows(run_onnx(path, held_out), reference).mean() >= 0.99

    plain = quantize_static(fp32, tmp_path / "f.int8.onnx", calib)
    assert not gate(plain)
    found = mixed_precision_fallback(fp32, tmp_path / "f.mixed.onnx", calib, gate, "minmax", "uint8")
    assert found is not None
    path, kept = found
    assert gate(path)
    convs = {i: n.name for n in onnx.load(str(fp32)).graph.node if n.op_type == "Conv" for i in n.input
             if i.startswith("conv")}
    # the outlier layer (its output would be quantised) and the layer that reads the outlier tensor; nothing else
    assert sorted(kept) == sorted([convs["conv2.weight"], convs["conv3.weight"]])
    assert convs["conv1.weight"] not in kept
