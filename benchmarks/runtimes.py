"""The TFLM arena edgekd predicts from an ONNX export beside what TensorFlow Lite Micro itself reports for the
`.tflite` of the same network, side by side in one run: the demo student with and without its log-mel front-end,
sea-student-3 and dscnn (without front-end), in FP32 and INT8. The prediction is what `edgekd profile MODEL.onnx
--device nrf52840` judges (head: edgekd's plan of the graph as TFLM holds it; tail: one rule per op type); the
measurement is TFLM's recording allocator on the `.tflite` that `edgekd export --format tflite` writes (INT8:
network alone, int8 input); beside them the buffers ExecuTorch's compiler plans for the `.pte` (`edgekd export
--format pte`: portable FP32, and its Cortex-M flow for a Cortex-M4 in INT8). Then the gate of every `.tflite` and
`.pte` file on the distilled demo student (`--run`, written by benchmarks/demo.py). Needs the tflite and executorch
extras (see README: TFLite Micro, ExecuTorch).

    python benchmarks/runtimes.py [--run runs/readme-demo/runs/demo]

Random weights for the arena rows: arena sizes depend on shapes and dtypes, not on the weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from results import save

from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.quantize import quantize_static
from edgekd.formats.pte.export import convert_pte, quantize_pte
from edgekd.formats.pte.runtime import pte_plan
from edgekd.formats.tflite.export import convert_tflite, quantize_tflite
from edgekd.formats.tflite.runtime import tflm_arena
from edgekd.profile.report import profile_model
from edgekd.recipe import load_recipe
from edgekd.runtime import seeded
from edgekd.students import build_student
from edgekd.students.base import Network
from edgekd.students.registry import PRESETS

CALIBRATION = 16


def _networks() -> list[tuple[str, torch.nn.Module, int]]:
    """(name, the network as exported, samples per window) of each model measured."""
    demo = load_recipe(Path(__file__).parent.parent / "recipes" / "demo.yaml")
    with seeded(0):
        student = build_student(demo.student, demo.reduction.dim).eval()
        presets = {name: build_student(*PRESETS[name]).eval() for name in ("sea-student-3", "dscnn")}
    samples = int(demo.window.seconds * demo.student.sample_rate)
    return ([("demo student, front-end included", student, samples), ("demo student, network alone",
                                                                        Network(student), samples)]
            + [(f"{name}, network alone", Network(model), int(model.frontend.spec.sample_rate * demo.window.seconds))
               for name, model in presets.items()])


def _inputs(module: torch.nn.Module, samples: int, count: int) -> np.ndarray:
    """`count` inputs for `module`: noise windows, as log-mel when it takes log-mel."""
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((count, samples)).astype(np.float32) * 0.1)
    if isinstance(module, Network):
        with torch.no_grad():
            return module.student.frontend(audio).numpy()
    return audio.numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/readme-demo/runs/demo"),
                        help="a distilled demo run, for the INT8 .tflite gate")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for index, (name, module, samples) in enumerate(_networks()):
            inputs = _inputs(module, samples, CALIBRATION)
            example = torch.from_numpy(inputs[:1])
            onnx_fp32 = export_onnx(module, example, folder / f"{index}.onnx", {}, "input")
            tflite_fp32 = convert_tflite(module, example, folder / f"{index}.tflite")
            variants = [("fp32", onnx_fp32, tflite_fp32, convert_pte(module, example, folder / f"{index}.pte"))]
            if isinstance(module, Network):  # INT8 MCU files take the log-mel (see README, TFLite Micro)
                quantize_pte(module, inputs, folder / f"{index}.int8.pte", "M4")
                variants.append(("int8", quantize_static(onnx_fp32, folder / f"{index}.int8.onnx", inputs, "minmax",
                                                         "int8"),
                                 quantize_tflite(tflite_fp32, folder / f"{index}.int8.tflite", inputs),
                                 folder / f"{index}.int8.pte"))
            for precision, onnx_path, tflite_path, pte_path in variants:
                predicted = profile_model(onnx_path, "nrf52840", latency_runs=0).memory.figure
                measured = tflm_arena(tflite_path)
                rows.append({"model": name, "precision": precision, "predicted_head": predicted["head"],
                             "predicted_tail": predicted["tail"], "predicted_total": predicted["total"],
                             "tflm_head": measured.head, "tflm_tail": measured.tail, "tflm_total": measured.total,
                             "tflite_bytes": tflite_path.stat().st_size,
                             "executorch_plan": sum(pte_plan(pte_path))})
                print(f"{name:40s} {precision}  predicted {predicted['total']:>9,d} B   TFLM head {measured.head:>9,d} "
                      f"tail {measured.tail:>7,d} total {measured.total:>9,d} B   "
                      f"({predicted['total'] / measured.total - 1:+.2%})   ExecuTorch {rows[-1]['executorch_plan']:>9,d} B")
        gate = _int8_gate(args.run, folder / "export")
    save("runtimes", args, {"rows": rows, "int8_gate": gate}, "runtimes.py")


def _int8_gate(run: Path, out: Path) -> dict:
    """`edgekd export RUN --format tflite,pte` on the distilled demo: each file's gate figures and its runtime's
    memory (TFLM's arena, ExecuTorch's plan)."""
    if not (run / "student.pt").is_file():
        raise SystemExit(f"{run}: no distilled run; run benchmarks/demo.py first or give --run")
    done = subprocess.run([sys.executable, "-m", "edgekd", "export", str(run), "--format", "tflite,pte", "--no-fp16",
                           "--out", str(out)], capture_output=True, text=True)
    variants = json.loads((out / "export.json").read_text())["variants"]
    print(f"edgekd export {run} --format tflite,pte: exit {done.returncode}")
    for v in variants:
        memory = f"TFLM arena {v['tflm_arena']['total']:,}" if v["tflm_arena"] else \
            f"ExecuTorch plan {sum(v['executorch_plan']):,}"
        print(f"  {v['file']:28s} mean cosine {v['mean_cosine']:.4f} (min {v['min_cosine']:.4f}), probe drop "
              f"{v['accuracy_drop']:+.2f} points, {'passed' if v['passed'] else 'MISSED'}, {memory} B")
    return {"run": str(run), "exit_code": done.returncode,
            "variants": [{key: v[key] for key in ("file", "precision", "size_bytes", "mean_cosine", "min_cosine",
                                                   "accuracy_drop", "passed", "tflm_arena", "executorch_plan")}
                         for v in variants]}


if __name__ == "__main__":
    main()
