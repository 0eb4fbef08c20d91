"""Benchmark results as committed JSON (benchmarks/results/NAME.json): the figures, the arguments, and where and on
what code they were measured. `benchmarks/readme.py` turns them into the README's tables."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# What a benchmark's figures depend on: a change here after the measured commit makes its table stale.
MEASURED_PATHS = ("edgekd", "recipes", "devices", "pyproject.toml")


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def machine() -> dict:
    """Cores, CPU model, memory, GPU (if any) and the library versions the figures were measured with."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    import onnxruntime
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() \
        else []
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": round(memory / 2**30, 1), "gpus": gpus,
            "python": platform.python_version(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}


def save(name: str, args: argparse.Namespace, results: dict, script: str) -> Path:
    """Write benchmarks/results/NAME.json with the commit (and whether the measured code had uncommitted changes),
    the date, the machine and the arguments beside the results."""
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "command": f"python benchmarks/{script} " + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in sorted(vars(args).items()) if v is not None and v is not False),
        "commit": _git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(_git("status", "--porcelain", "--", *MEASURED_PATHS, f"benchmarks/{script}")),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "arguments": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "results": results,
    }
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    print(f"results written to {path.relative_to(ROOT)}")
    return path
