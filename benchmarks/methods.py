"""The distillation methods of `methods:` against plain SEA on one recipe (default: demo), same seed, same data,
same epochs: fidelity to the teacher, downstream accuracy and training time, measured side by side in one run.

Every row is a full `edgekd distill` run under OUT (finished runs with the same recipe are read back, so an
interrupted benchmark continues: give a fresh OUT to measure the code as it is). The table is printed and saved
as OUT/methods.md; the figures go to benchmarks/results/methods.json for the README.

    python benchmarks/methods.py [--recipe demo] [--out runs/methods] [--epochs N]
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from readme import methods_table
from results import save

from edgekd.recipe import load_recipe, recipe_from_dict
from edgekd.stages.distill import distill_once
from edgekd.stages.tune import tune_kd

HEAD_ONLY = {"kd": {"alpha": 1.0}}  # a head trained on labels alone: the reference for the head methods
TRANSFORMER = {"name": "transformer", "width": 64, "layers": 2, "patch_frames": 5}

# (row, what it adds to plain SEA, student override, teacher override)
VARIANTS = [
    ("plain SEA", {}, None, None),
    ("+ head, hard labels only (α=1)", HEAD_ONLY, None, None),
    ("+ vanilla KD (T=4, α=0.5)", {"kd": {}}, None, None),
    ("+ KD + deep mutual learning", {"kd": {}, "mutual": {}}, None, None),
    ("+ KD + label revision", {"kd": {}, "label_revision": {}}, None, None),
    ("+ KD + label revision + selection", {"kd": {}, "label_revision": {}, "selection": {}}, None, None),
    ("+ censoring hard examples", {"censor": {}}, None, None),
    ("+ difference sampling (MiniPLM)", {"difference_sampling": {}}, None, None),
    ("+ relational KD, memory bank", {"relational_bank": {}}, None, None),
    ("+ retrieval-augmented KD (deployed base)", {"retrieval": {}}, None, None),
    ("teacher-free: head on labels only", HEAD_ONLY, None, {"name": "none"}),
    ("teacher-free: ReffAKD soft labels", {"kd": {}, "teacher_free": {}}, None, {"name": "none"}),
]


def _recipe(base: dict, name: str, methods: dict, student: dict | None, teacher: dict | None, source: str):
    raw = copy.deepcopy(base)
    raw["name"] = name
    raw["methods"] = methods
    if student is not None:
        raw["student"] = {key: value for key, value in base["student"].items()
                          if key in ("sample_rate", "n_fft", "hop_length", "n_mels", "top_db")} | student
    if teacher is not None:
        raw["teacher"] = teacher
    return recipe_from_dict(raw, source)


def _row(label: str, metrics: dict, plain: dict | None, seconds: float | None = None) -> dict:
    fid = metrics.get("fidelity", {}).get("test")
    head = metrics.get("head", {})
    probe = metrics["probe"]["student"]
    return {
        "method": label,
        "fidelity_cosine": fid["cosine"] if fid else None,
        "fidelity_cka": fid["cka"] if fid else None,
        "head_top1_agreement": head.get("top1_agreement"),
        "head_predictive_kl": head.get("predictive_kl"),
        "probe_accuracy": probe,
        "probe_delta_points": None if plain is None else 100 * (probe - plain["probe"]["student"]),
        "head_accuracy": head.get("accuracy"),
        "training_seconds": seconds if seconds is not None else metrics["training"]["training_seconds"],
        "storage_bytes": metrics["student"]["storage_bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--out", type=Path, default=Path("runs/methods"))
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs (all rows alike)")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    base = recipe.to_dict()
    if args.epochs:
        base["train"]["epochs"] = args.epochs
    epochs = base["train"]["epochs"]
    rows, plain = [], None
    for label, methods, student, teacher in VARIANTS:
        slug = "-".join("".join(c if c.isascii() and c.isalnum() else " " for c in label).split())[:60]
        variant = _recipe(base, f"{recipe.name}-{slug}", methods, student, teacher, recipe.source)
        print(f"· {label}", flush=True)
        metrics = distill_once(variant, args.out / slug).to_json()
        plain = plain or metrics
        rows.append(_row(label, metrics, plain))

    print("· tuned KD: grid T ∈ {1, 4, 8} × α ∈ {0.1, 0.5, 0.9}, chosen on validation", flush=True)
    kd_recipe = _recipe(base, f"{recipe.name}-kd", {"kd": {}}, None, None, recipe.source)
    tuned = tune_kd(kd_recipe, args.out / "tune", [1, 4, 8], [0.1, 0.5, 0.9])
    best = tuned.best
    search_seconds = sum(t.training_seconds for t in tuned.trials)
    best_metrics = json.loads((Path(best.run_dir) / "metrics.json").read_text())
    rows.append(_row(f"+ tuned KD (T={best.temperature:g}, α={best.alpha:g}; search {len(tuned.trials)} runs)",
                     best_metrics, plain, search_seconds))

    print("· attention alignment: a 4-head transformer teacher distilled first, then 2-head students", flush=True)
    teacher_recipe = _recipe(base, f"{recipe.name}-transformer-4h", {}, TRANSFORMER | {"heads": 4}, None,
                             recipe.source)
    distill_once(teacher_recipe, args.out / "transformer-4h")
    for label, methods in (("transformer 2 heads, plain SEA", {}),
                           ("transformer 2 heads + AMAD from 4 heads",
                            {"attention": {"teacher_run": str(args.out / "transformer-4h")}})):
        slug = "transformer-2h" + ("-amad" if methods else "")
        variant = _recipe(base, f"{recipe.name}-{slug}", methods, TRANSFORMER | {"heads": 2}, None, recipe.source)
        print(f"· {label}", flush=True)
        rows.append(_row(label, distill_once(variant, args.out / slug).to_json(), plain))

    table = methods_table({"rows": rows})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "methods.md").write_text(table + "\n")
    print(table)
    print(f"\nsaved to {args.out / 'methods.md'}")
    save("methods", args, {"recipe": recipe.name, "epochs": epochs, "seed": recipe.seed, "rows": rows}, "methods.py")


if __name__ == "__main__":
    main()
