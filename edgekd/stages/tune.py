"""`edgekd tune`: grid search of KD's temperature T and hard-label weight α on validation data ("tuned KD": the
usual defaults are often far from the best setting for a given teacher, student and domain).

Each trial is a full distillation into its own run directory (the teacher cache is shared, so the teacher runs
once); a trial whose run already finished with the same recipe is read back, so an interrupted search continues.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import yaml

from edgekd.errors import EdgekdError
from edgekd.files import check_writable, write_json, write_text
from edgekd.methods.kd import KdConfig
from edgekd.recipe import Recipe, recipe_from_dict
from edgekd.stages.distill import distill_once


@dataclass
class Trial:
    temperature: float
    alpha: float
    val_accuracy: float  # of the head, at the kept epoch: what the search ranks by
    test_accuracy: float
    top1_agreement: float | None
    training_seconds: float
    run_dir: str


@dataclass
class TuneResult:
    recipe: str
    selected_on: str
    trials: list[Trial]
    best: Trial
    default: Trial | None  # the trial at KD's default T and α, when the grid has it
    tuned_recipe: str

    def to_json(self) -> dict:
        return asdict(self)


def _trial_recipe(recipe: Recipe, temperature: float, alpha: float, epochs: int | None) -> Recipe:
    raw = copy.deepcopy(recipe.to_dict())
    kd = raw["methods"].get("kd") or KdConfig().model_dump()
    raw["methods"]["kd"] = kd | {"temperature": temperature, "alpha": alpha}
    if epochs:
        raw["train"]["epochs"] = epochs
    raw["name"] = f"{recipe.name}-T{temperature:g}-a{alpha:g}"
    return recipe_from_dict(raw, recipe.source)


def tune_kd(recipe: Recipe, out_dir: Path, temperatures: list[float], alphas: list[float], epochs: int | None = None,
            on_trial: Callable[[int, int, Trial], None] | None = None) -> TuneResult:
    if recipe.teacher.name == "none" and recipe.methods.get("teacher_free") is None:
        raise EdgekdError(f"{recipe.source}: tuning KD needs soft labels: a teacher, or methods.teacher_free")
    bad = [a for a in alphas if not 0 <= a <= 1] + [t for t in temperatures if t <= 0]
    if bad:
        raise EdgekdError(f"tune: α must lie in [0, 1] and T be > 0; got {bad[0]:g}")
    check_writable(out_dir / "tune.json")
    grid = [(t, a) for t in temperatures for a in alphas]
    trials: list[Trial] = []
    for index, (temperature, alpha) in enumerate(grid):
        run_dir = out_dir / f"T{temperature:g}_a{alpha:g}"
        metrics = distill_once(_trial_recipe(recipe, temperature, alpha, epochs), run_dir)
        trial = Trial(temperature, alpha, metrics.training.best_val_accuracy, metrics.head["accuracy"],
                      metrics.head.get("top1_agreement"), metrics.training.training_seconds, str(run_dir))
        trials.append(trial)
        if on_trial:
            on_trial(index + 1, len(grid), trial)
    best = max(trials, key=lambda t: t.val_accuracy)  # ties: the first in grid order
    default = KdConfig()
    baseline = next((t for t in trials if (t.temperature, t.alpha) == (default.temperature, default.alpha)), None)
    tuned = copy.deepcopy(recipe.to_dict())
    tuned["methods"]["kd"] = (tuned["methods"].get("kd") or default.model_dump()) | {
        "temperature": best.temperature, "alpha": best.alpha}
    result = TuneResult(recipe.name, "validation head accuracy", trials, best, baseline, str(out_dir / "tuned.yaml"))
    write_text(out_dir / "tuned.yaml", yaml.safe_dump(tuned, sort_keys=False))
    write_json(out_dir / "tune.json", result.to_json())
    return result
