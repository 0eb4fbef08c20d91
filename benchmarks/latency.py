"""Median latency (1 thread, batch 1) of the demo student as PyTorch eager, onnxruntime FP32, INT8 with uint8 and
with int8 activations, and FP16, measured side by side in one run on this CPU.

    python benchmarks/latency.py [--run runs/demo] [--repeats 300]

Without --run, the demo recipe's student with random weights is used (latency does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import save

from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.quantize import convert_fp16, quantize_static
from edgekd.formats.onnx.session import create_session
from edgekd.recipe import load_recipe
from edgekd.students import build_student


def _median_ms(call, repeats: int) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.run:
        from edgekd.run_dir import load_student

        student, recipe = load_student(args.run)
    else:
        recipe = load_recipe("demo")
        torch.manual_seed(0)
        student = build_student(recipe.student, recipe.reduction.dim).eval()
    samples = int(recipe.window.seconds * recipe.student.sample_rate)
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((1, samples))).astype(np.float32)
    calib = (0.1 * rng.standard_normal((64, samples))).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = export_onnx(student, torch.from_numpy(audio), tmp / "fp32.onnx")
        files = {
            "onnxruntime FP32": fp32,
            "onnxruntime INT8 (uint8 activations)": quantize_static(fp32, tmp / "u8.onnx", calib, activations="uint8"),
            "onnxruntime INT8 (int8 activations)": quantize_static(fp32, tmp / "s8.onnx", calib, activations="int8"),
            "onnxruntime FP16": convert_fp16(fp32, tmp / "fp16.onnx"),
        }
        tensor = torch.from_numpy(audio)
        with torch.inference_mode():
            results = {"PyTorch eager FP32": _median_ms(lambda: student(tensor), args.repeats)}
        for name, path in files.items():
            session = create_session(path, threads=1)
            results[name] = _median_ms(lambda s=session: s.run(None, {"audio": audio}), args.repeats)
    base = results["onnxruntime FP32"]
    print(f"demo student ({recipe.student.name}, {samples} samples), 1 thread, batch 1, median of {args.repeats}")
    print(f"{'variant':40} {'median ms':>10} {'vs ORT FP32':>12}")
    for name, ms in results.items():
        print(f"{name:40} {ms:>10.3f} {base / ms:>11.2f}x")
    save("latency", args, {"student": recipe.student.name, "samples": samples, "median_ms": results}, "latency.py")


if __name__ == "__main__":
    main()
