"""Measured latency and arena use in onnxruntime on this host."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from edgekd.formats.onnx.graph import example_inputs
from edgekd.formats.onnx.session import create_session


def measure_latency(model_path: Path, threads: int, runs: int = 20, warmup: int = 3) -> dict[str, float]:
    session = create_session(model_path, threads=threads)
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


def measure_session_memory(model_path: Path, threads: int) -> int | None:
    """Peak bytes onnxruntime's CPU arena had in use during one run, from its profiler's allocator counters."""
    with tempfile.TemporaryDirectory() as tmp:
        session = create_session(model_path, threads=threads, profile_prefix=Path(tmp) / "ort")
        session.run(None, example_inputs(session))
        events = json.loads(Path(session.end_profiling()).read_text())
    peaks = [int(e["args"]["mem_in_use_peak"]) for e in events if "mem_in_use_peak" in e.get("args", {})]
    return max(peaks) if peaks else None
