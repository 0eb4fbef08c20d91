"""edgekd profile's figures beside the published ones (SEA, Srivastava et al. 2021, Table 1; EdgeL3), and how long
profiling a ~5 M-parameter model takes on this machine.

    python benchmarks/published_figures.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from results import save

from edgekd.formats.onnx.export import export_onnx
from edgekd.profile import profile_model
from edgekd.teachers.l3 import random_l3
from edgekd.units import format_bytes, format_count

MODELS = {
    # name: (builder, input samples, published params, published FP32 MB, published activation)
    "L3-Net audio teacher (OpenL3 mel256)": (lambda: random_l3(), 48000, 4.69e6, 18.8, "12 MB (EdgeL3 README)"),
    "SEA student 3 (8 kHz, 64 mels, 32/64/128/64)": (
        lambda: random_l3((32, 32, 64, 64, 128, 128, 64, 64), 8000, 1024, 160, 64), 8000, 0.40e6, 1.6, "409.6 kB"),
}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    torch.manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (build, samples, params, megabytes, activation) in MODELS.items():
            path = export_onnx(build(), torch.randn(1, samples) * 0.1, Path(tmp) / "model.onnx")
            began = time.perf_counter()
            report = profile_model(path, latency_runs=0)
            seconds = time.perf_counter() - began
            network = report.params - report.frontend_params
            weights = sum(report.bytes_by_dtype.values()) - report.frontend_bytes
            print(f"\n{name}")
            print(f"  {'figure':44} {'published':>14} {'edgekd':>14}")
            print(f"  {'parameters (network, no front-end)':44} {format_count(params):>14} {format_count(network):>14}")
            print(f"  {'FP32 weights (network)':44} {f'{megabytes} MB':>14} {format_bytes(weights):>14}")
            print(f"  {'activation memory as published':44} {activation:>14}")
            print(f"  {'  1. largest single tensor':44} {'':>14} {format_bytes(report.largest_tensor_bytes):>14}")
            print(f"  {'  2. largest node working set':44} {'':>14} {format_bytes(report.working_set_bytes):>14}")
            print(f"  {'  3. peak live bytes':44} {'':>14} {format_bytes(report.activation_bytes):>14}")
            print(f"  {'  4. arena (greedy offsets)':44} {'':>14} {format_bytes(report.arena_bytes):>14}")
            print(f"  file {format_bytes(report.storage_bytes)} = network + front-end DFT/mel constants "
                  f"{format_bytes(report.frontend_bytes)} + graph; profiled ({report.params / 1e6:.2f} M values "
                  f"in the file) in {seconds:.2f} s")
            rows.append({"model": name, "published_params": params, "published_fp32_mb": megabytes,
                         "published_activation": activation, "network_params": network, "network_fp32_bytes": weights,
                         "largest_tensor_bytes": report.largest_tensor_bytes,
                         "working_set_bytes": report.working_set_bytes, "peak_bytes": report.activation_bytes,
                         "arena_bytes": report.arena_bytes, "storage_bytes": report.storage_bytes,
                         "frontend_bytes": report.frontend_bytes, "file_values": report.params,
                         "profile_seconds": seconds})
    save("published_figures", args, {"models": rows}, "published_figures.py")


if __name__ == "__main__":
    main()
