"""edgekd's predicted arena beside what TensorFlow Lite Micro itself plans, for the same networks side by side in
one run: the demo student with and without its log-mel front-end, sea-student-3 and dscnn (without front-end), in
FP32 and INT8. edgekd's figure is `edgekd profile`'s arena plan of the ONNX export (INT8: QDQ, calibrated); TFLM's
is what its recording allocator reports for the `.tflite` that `edgekd export --format tflite` writes (INT8: full
integer, network alone). Needs the tflite extra (pip install 'edgekd[tflite]').

    python benchmarks/runtimes.py

Random weights: arena sizes depend on shapes and dtypes, not on the weights.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from results import save

from edgekd.onnx.export import export_onnx
from edgekd.onnx.quantize import quantize_static
from edgekd.profile.report import analyse_graph
from edgekd.recipe import load_recipe
from edgekd.runtime import seeded
from edgekd.stages.export import _Network
from edgekd.students import build_student
from edgekd.students.registry import PRESETS
from edgekd.tflite import convert_tflite, quantize_tflite, tflm_arena

CALIBRATION = 16


def _networks() -> list[tuple[str, torch.nn.Module, int]]:
    """(name, the network as exported, samples per window) of each model measured."""
    demo = load_recipe(Path(__file__).parent.parent / "recipes" / "demo.yaml")
    with seeded(0):
        student = build_student(demo.student, demo.reduction.dim).eval()
        presets = {name: build_student(*PRESETS[name]).eval() for name in ("sea-student-3", "dscnn")}
    samples = int(demo.window.seconds * demo.student.sample_rate)
    return ([("demo student, front-end included", student, samples), ("demo student, network alone",
                                                                        _Network(student), samples)]
            + [(f"{name}, network alone", _Network(model), int(model.frontend.spec.sample_rate * demo.window.seconds))
               for name, model in presets.items()])


def _inputs(module: torch.nn.Module, samples: int, count: int) -> np.ndarray:
    """`count` inputs for `module`: noise windows, as log-mel when it takes log-mel."""
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((count, samples)).astype(np.float32) * 0.1)
    if isinstance(module, _Network):
        with torch.no_grad():
            return module.student.frontend(audio).numpy()
    return audio.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for index, (name, module, samples) in enumerate(_networks()):
            inputs = _inputs(module, samples, CALIBRATION)
            example = torch.from_numpy(inputs[:1])
            onnx_fp32 = export_onnx(module, example, folder / f"{index}.onnx", {}, "input")
            tflite_fp32 = convert_tflite(module, example, folder / f"{index}.tflite")
            variants = [("fp32", onnx_fp32, tflite_fp32)]
            if isinstance(module, _Network):  # INT8 .tflite files take the log-mel (see README, TFLite Micro)
                variants.append(("int8", quantize_static(onnx_fp32, folder / f"{index}.int8.onnx", inputs, "minmax",
                                                         "int8"),
                                 quantize_tflite(tflite_fp32, folder / f"{index}.int8.tflite", inputs)))
            for precision, onnx_path, tflite_path in variants:
                predicted = analyse_graph(onnx_path)[1].arena_bytes
                measured = tflm_arena(tflite_path)
                rows.append({"model": name, "precision": precision, "edgekd_arena": predicted,
                             "tflm_head": measured.head, "tflm_tail": measured.tail, "tflm_total": measured.total,
                             "tflite_bytes": tflite_path.stat().st_size})
                print(f"{name:40s} {precision}  edgekd {predicted:>9,d} B   TFLM head {measured.head:>9,d} "
                      f"tail {measured.tail:>7,d} total {measured.total:>9,d} B   "
                      f"({measured.total / predicted - 1:+.1%} vs edgekd)")
    save("runtimes", args, {"rows": rows}, "runtimes.py")


if __name__ == "__main__":
    main()
