"""`edgekd tune`: grid search of KD's temperature T and hard-label weight α on validation data ("tuned KD": the
usual defaults are often far from the best setting for a given teacher, student and domain).

Each trial is a full distillation into its own run directory (the teacher cache is shared, so the teacher runs
once); a trial whose run already finished with the same recipe is read back, so an interrupted search continues.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import yaml

from edgekd.config import Recipe, recipe_from_dict
from edgekd.errors import EdgekdError
from edgekd.files import atomic_write
from edgekd.methods.config import KdConfig


@dataclass
class Trial:
    temperature: float
    alpha: float
    val_accuracy: float  # of the head, at the kept epoch: what the search ranks by
    test_accuracy: float
    top1_agreement: float | None
    training_seconds: float
    run_dir: str


def _trial_recipe(recipe: Recipe, temperature: float, alpha: float, epochs: int | None) -> Recipe:
    raw = copy.deepcopy(recipe.to_dict())
    kd = raw["methods"].get("kd") or KdConfig().model_dump()
    raw["methods"]["kd"] = kd | {"temperature": temperature, "alpha": alpha}
    if epochs:
        raw["train"]["epochs"] = epochs
    raw["name"] = f"{recipe.name}-T{temperature:g}-a{alpha:g}"
    return recipe_from_dict(raw, recipe.source)


def tune_kd(recipe: Recipe, out_dir: Path, temperatures: list[float], alphas: list[float], epochs: int | None = None,
            on_trial: Callable[[int, int, Trial], None] | None = None) -> dict:
    from edgekd.distill import distill_once

    if recipe.teacher.name == "none" and recipe.methods.teacher_free is None:
        raise EdgekdError(f"{recipe.source}: tuning KD needs soft labels: a teacher, or methods.teacher_free")
    bad = [a for a in alphas if not 0 <= a <= 1] + [t for t in temperatures if t <= 0]
    if bad:
        raise EdgekdError(f"tune: α must lie in [0, 1] and T be > 0; got {bad[0]:g}")
    grid = [(t, a) for t in temperatures for a in alphas]
    trials: list[Trial] = []
    for index, (temperature, alpha) in enumerate(grid):
        trial_recipe = _trial_recipe(recipe, temperature, alpha, epochs)
        run_dir = out_dir / f"T{temperature:g}_a{alpha:g}"
        metrics = distill_once(trial_recipe, run_dir)
        trial = Trial(temperature, alpha, metrics["training"]["best_val_accuracy"], metrics["head"]["accuracy"],
                      metrics["head"].get("top1_agreement"), metrics["training"]["training_seconds"], str(run_dir))
        trials.append(trial)
        if on_trial:
            on_trial(index + 1, len(grid), trial)
    best = max(trials, key=lambda t: t.val_accuracy)  # ties: the first in grid order
    default = KdConfig()
    baseline = next((t for t in trials if (t.temperature, t.alpha) == (default.temperature, default.alpha)), None)
    tuned = copy.deepcopy(recipe.to_dict())
    tuned["methods"]["kd"] = (tuned["methods"].get("kd") or default.model_dump()) | {
        "temperature": best.temperature, "alpha": best.alpha}
    result = {"recipe": recipe.name, "selected_on": "validation head accuracy", "trials": [asdict(t) for t in trials],
              "best": asdict(best), "default": asdict(baseline) if baseline else None,
              "tuned_recipe": str(out_dir / "tuned.yaml")}
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "tuned.yaml", lambda h: h.write(yaml.safe_dump(tuned, sort_keys=False)), mode="w")
    atomic_write(out_dir / "tune.json", lambda h: h.write(json.dumps(result, indent=2)), mode="w")
    return result
