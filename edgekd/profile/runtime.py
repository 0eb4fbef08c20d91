"""Measured latency in onnxruntime."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgekd.profile.memory import example_inputs


def measure_latency(model_path: Path, threads: int, runs: int = 20, warmup: int = 3) -> dict[str, float]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    feeds = example_inputs(session)
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)), "runs": runs,
            "threads": threads}
