"""`edgekd evaluate` on 12,000-window runs, today's code beside an earlier commit's, in one run.

Two runs, each distilled once: 12,000 one-second synthetic windows (CREPE tiny as teacher: a 256-dim embedding, PCA
to 64) and, with `--esc10 FOLDER`, real audio as in the issue that asked for the speed-up: ESC-10's 400 clips cut
into 13,614 one-second windows every 0.125 s, the published SEA-64 model as teacher, probes over its 5 folds. Each
run is evaluated with the code of `--baseline` (checked out into a temporary git worktree) and with this checkout,
alternately, `--repeats` times each, on the same run and teacher cache, cold and as a second student of the same
teacher (see _measure); and cold with `--logmel-baseline`, the log-mel baseline's probes that the baseline commit
did not fit (its time set beside the same cold baseline run).

    python benchmarks/evaluate_speed.py [--esc10 ESC-10] [--baseline 1a6a12a] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from real import SEA_64, esc10_labels
from results import ROOT, save


def _synthetic(clips_per_class: int) -> dict:
    return {"name": "evaluate-speed", "seed": 0,
            "data": {"name": "synthetic_urban", "clips_per_class": clips_per_class},
            "window": {"seconds": 1.0}, "teacher": {"name": "crepe", "variant": "tiny", "hop_ms": 250},
            "reduction": {"method": "pca", "dim": 64}, "student": {"name": "sea_cnn"},
            "train": {"epochs": 1, "batch_size": 64}}


def _esc10(root: Path, labels: Path) -> dict:
    return {"name": "evaluate-speed-esc10", "seed": 0,
            "data": {"name": "folder", "root": str(root), "labels_csv": str(esc10_labels(root, labels))},
            "window": {"seconds": 1.0, "hop_seconds": 0.125}, "teacher": {"name": "l3", "path": str(SEA_64)},
            "reduction": {"method": "none"}, "student": {"name": "sea_cnn", "sample_rate": 8000},
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


WITH_BASELINE = "cold, with --logmel-baseline"


def _measure(case: str, recipe: dict, folder: Path, baseline: Path, repeats: int) -> dict:
    """Cold: the run evaluated with no probe kept from before. Another student: a second student of the same teacher
    on the same data (another learning rate) evaluated after the first, as a methods comparison or a search does:
    the current code keeps the teacher's probe scores, the baseline fits them again."""
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(folder / "cache"), COLUMNS="120")
    runs = {}
    # the second student differs by its learning rate only: the seed would also draw other synthetic audio
    for index, lr in enumerate((3e-3, 1e-3)):
        path = folder / f"{case}-{index}.yaml"
        path.write_text(yaml.safe_dump(dict(recipe, train=dict(recipe["train"], lr=lr))))
        runs[index] = folder / f"{case}-{index}"
        distilled = _edgekd(ROOT, "distill", str(path), "--out", str(runs[index]), env=env, cwd=folder)
        windows = sum(json.loads((runs[index] / "metrics.json").read_text())["windows"].values())
        print(f"{case}: distilled {windows:,} windows in {distilled:.0f} s (learning rate {lr:g})", flush=True)
    probes = folder / "cache" / "probes"
    times: dict[str, dict[str, list[float]]] = {scenario: {"baseline": [], "current": []}
                                                for scenario in ("cold", WITH_BASELINE, "another student")}
    for _ in range(repeats):
        times["cold"]["baseline"].append(_edgekd(baseline, "evaluate", str(runs[0]), env=env, cwd=folder))
        times[WITH_BASELINE]["baseline"].append(times["cold"]["baseline"][-1])  # the same work, and more
        shutil.rmtree(probes, ignore_errors=True)
        times["cold"]["current"].append(_edgekd(ROOT, "evaluate", str(runs[0]), env=env, cwd=folder))
        shutil.rmtree(probes, ignore_errors=True)
        times[WITH_BASELINE]["current"].append(_edgekd(ROOT, "evaluate", str(runs[0]), "--logmel-baseline", env=env,
                                                       cwd=folder))
        times["another student"]["baseline"].append(_edgekd(baseline, "evaluate", str(runs[1]), env=env, cwd=folder))
        shutil.rmtree(probes, ignore_errors=True)
        _edgekd(ROOT, "evaluate", str(runs[0]), env=env, cwd=folder)  # the first student, evaluated before
        times["another student"]["current"].append(_edgekd(ROOT, "evaluate", str(runs[1]), env=env, cwd=folder))
        for scenario, measured in times.items():
            print(f"{case}, {scenario}: baseline {measured['baseline'][-1]:.1f} s, current "
                  f"{measured['current'][-1]:.1f} s", flush=True)
    out = {"windows": windows, "seconds": times, "median_seconds": {}, "speedup": {}}
    for scenario, measured in times.items():
        medians = {name: statistics.median(values) for name, values in measured.items()}
        out["median_seconds"][scenario] = medians
        out["speedup"][scenario] = medians["baseline"] / medians["current"]
        print(f"{case}, {scenario}: {out['speedup'][scenario]:.2f}x faster", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="1a6a12a", help="the commit to compare with")
    parser.add_argument("--clips-per-class", type=int, default=1200)
    parser.add_argument("--esc10", type=Path, help="ESC-10's folder (karolpiczak/ESC-10 at 553c8f1)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        cases = {"synthetic": _synthetic(args.clips_per_class)}
        if args.esc10:
            cases["esc10"] = _esc10(args.esc10.resolve(), folder / "labels.csv")
        baseline = folder / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for name, code in (("baseline", baseline), ("current", ROOT)):  # each runs the code it names
                found = subprocess.run([sys.executable, "-c", "import edgekd; print(edgekd.__file__)"], cwd=folder,
                                       env=dict(os.environ, PYTHONPATH=str(code)), capture_output=True,
                                       text=True).stdout
                assert found.startswith(str(code)), (name, found)
            results = {case: _measure(case, recipe, folder, baseline, args.repeats) for case, recipe in cases.items()}
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT, capture_output=True)
    save("evaluate_speed", args, {"baseline_commit": args.baseline, "cases": results}, "evaluate_speed.py")


if __name__ == "__main__":
    main()
