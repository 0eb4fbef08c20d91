"""Teacher inference saved by the teacher-embedding cache when training several students on one teacher.

Trains N students (differing in width) twice, in one run: once recomputing the teacher for each student (a fresh
cache every time), once sharing one cache. Prints the measured times and their ratio.

    python benchmarks/cache_reuse.py [--recipe demo] [--clips-per-class 20] [--epochs 10] [--students 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import yaml
from results import save

from edgekd.recipe import load_recipe, recipe_from_dict
from edgekd.stages.distill import distill


def _variants(recipe_name: str, clips_per_class: int, epochs: int, count: int):
    base = load_recipe(recipe_name)
    raw = yaml.safe_load(Path(base.source).read_text())
    widths = raw["student"].get("widths", [8, 16, 32, 32])
    for index in range(count):
        variant = copy.deepcopy(raw)
        variant["data"]["clips_per_class"] = clips_per_class
        variant["train"]["epochs"] = epochs
        variant["student"]["widths"] = [w * (index + 1) for w in widths]
        yield recipe_from_dict(variant, f"{base.source} (student {index})")


def _timed_distill(recipe, cache: Path, run_dir: Path) -> tuple[float, int]:
    os.environ["EDGEKD_CACHE_DIR"] = str(cache)
    began = time.perf_counter()
    result = distill(recipe, run_dir, force=True)
    return time.perf_counter() - began, result.metrics.teacher.cache["computed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--students", type=int, default=2)
    args = parser.parse_args()
    recipes = list(_variants(args.recipe, args.clips_per_class, args.epochs, args.students))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        recompute = [_timed_distill(r, tmp / f"fresh{i}", tmp / f"a{i}") for i, r in enumerate(recipes)]
        shared = [_timed_distill(r, tmp / "shared", tmp / f"b{i}") for i, r in enumerate(recipes)]
    windows = recompute[0][1]
    print(f"recipe {args.recipe}: {len(recipes)} students, {windows} windows, {args.epochs} epochs each")
    print(f"{'student':>8} {'recompute teacher (s)':>22} {'shared cache (s)':>17} {'teacher rows computed':>22}")
    for i, ((a, rows_a), (b, rows_b)) in enumerate(zip(recompute, shared)):
        print(f"{i:>8} {a:>22.1f} {b:>17.1f} {f'{rows_a} / {rows_b}':>22}")
    total_a, total_b = sum(t for t, _ in recompute), sum(t for t, _ in shared)
    saved = sum(t for t, _ in recompute[1:]) - sum(t for t, _ in shared[1:])
    print(f"total: {total_a:.1f} s recomputing vs {total_b:.1f} s with one cache → {total_a / total_b:.2f}x faster; "
          f"{saved:.1f} s of teacher inference saved for students after the first")
    save("cache_reuse", args, {"windows": windows, "students": [
        {"recompute_seconds": a, "recompute_rows": rows_a, "shared_seconds": b, "shared_rows": rows_b}
        for (a, rows_a), (b, rows_b) in zip(recompute, shared)]}, "cache_reuse.py")


if __name__ == "__main__":
    main()
