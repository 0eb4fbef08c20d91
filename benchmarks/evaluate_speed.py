"""`edgekd evaluate` on a 12,000-window run, today's code beside an earlier commit's, in one run.

Distils a student on 12,000 one-second synthetic windows (CREPE tiny as teacher: a 256-dim embedding, PCA to 64), then
times `edgekd evaluate` with the code of `--baseline` (checked out into a temporary git worktree) and with this
checkout, alternately, `--repeats` times each, on the same run and teacher cache. The current code also fits a
log-mel baseline probe the baseline does not.

    python benchmarks/evaluate_speed.py [--baseline 1a6a12a] [--clips-per-class 1200] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from results import ROOT, save


def _recipe(clips_per_class: int) -> dict:
    return {"name": "evaluate-speed", "seed": 0,
            "data": {"name": "synthetic_urban", "clips_per_class": clips_per_class},
            "window": {"seconds": 1.0}, "teacher": {"name": "crepe", "variant": "tiny", "hop_ms": 250},
            "reduction": {"method": "pca", "dim": 64}, "student": {"name": "sea_cnn"},
            "train": {"epochs": 1, "batch_size": 64}}


def _edgekd(code: Path, *args: str, env: dict, cwd: Path) -> float:
    """Seconds of one `edgekd` command run with the package found in `code` (run outside the checkout: `python -m`
    puts the working directory first on the path)."""
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgekd", *args], capture_output=True, text=True, cwd=cwd,
                          env=env | {"PYTHONPATH": str(code)})
    if done.returncode != 0:
        raise SystemExit(f"edgekd {' '.join(args)} ({code}) failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="1a6a12a", help="the commit to compare with")
    parser.add_argument("--clips-per-class", type=int, default=1200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        env = dict(os.environ, EDGEKD_CACHE_DIR=str(folder / "cache"), COLUMNS="120")
        recipe = folder / "recipe.yaml"
        recipe.write_text(yaml.safe_dump(_recipe(args.clips_per_class)))
        distilled = _edgekd(ROOT, "distill", str(recipe), "--out", str(folder / "run"), env=env, cwd=folder)
        windows = sum(json.loads((folder / "run" / "metrics.json").read_text())["windows"].values())
        print(f"distilled {windows:,} windows in {distilled:.0f} s")
        baseline = folder / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for name, code in (("baseline", baseline), ("current", ROOT)):  # each runs the code it names
                found = subprocess.run([sys.executable, "-c", "import edgekd; print(edgekd.__file__)"], cwd=folder,
                                       env=env | {"PYTHONPATH": str(code)}, capture_output=True, text=True).stdout
                assert found.startswith(str(code)), (name, found)
            times: dict[str, list[float]] = {"baseline": [], "current": []}
            for _ in range(args.repeats):
                for name, code in (("baseline", baseline), ("current", ROOT)):
                    times[name].append(_edgekd(code, "evaluate", str(folder / "run"), env=env, cwd=folder))
                    print(f"{name:8s} evaluate: {times[name][-1]:.1f} s")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"median: baseline {medians['baseline']:.1f} s, current {medians['current']:.1f} s, "
          f"{medians['baseline'] / medians['current']:.2f}x faster")
    save("evaluate_speed", args, {"windows": windows, "baseline_commit": args.baseline, "seconds": times,
                                  "median_seconds": medians, "speedup": medians["baseline"] / medians["current"]},
         "evaluate_speed.py")


if __name__ == "__main__":
    main()
