"""`edgekd evaluate`: a trained student against its teacher on held-out data — fidelity (cosine, MSE, R², linear CKA)
and downstream probes on frozen embeddings (logistic regression and a small MLP grid), in domain and, for each other
dataset given, out of domain (SEA's finding: specialised students win in domain and lose out of it)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from edgekd.cache import teacher_embeddings
from edgekd.config import Recipe, load_recipe
from edgekd.distill import load_domain_data, load_student
from edgekd.distributed import local_device
from edgekd.errors import EdgekdError
from edgekd.evaluate import downstream_scores, fidelity, linear_cka
from edgekd.reduction import Reduction
from edgekd.teachers import build_teacher
from edgekd.train import predict


def _fold_splits(groups: list[str] | None) -> list[str]:
    """Official folds, when the dataset has them (UrbanSound8K's fold1..10, ESC-50's fold1..5)."""
    folds = sorted({g for g in groups or [] if g.startswith("fold")}, key=lambda g: int(g[4:]) if g[4:].isdigit() else 0)
    return folds if len(folds) >= 3 else []


def evaluate_dataset(run_recipe: Recipe, data_recipe: Recipe, student, reduction: Reduction) -> dict:
    teacher = build_teacher(run_recipe.teacher)
    data = load_domain_data(data_recipe, teacher.sample_rate or run_recipe.student.sample_rate)
    windows = data.windows
    raw = teacher_embeddings(teacher, windows, local_device(run_recipe.train.device)).embeddings
    target = reduction.transform(raw)
    output = predict(student, torch.from_numpy(data.student_audio)).numpy()
    held_out = windows.split_index("test")
    result = {"data": data_recipe.data.model_dump(mode="json"), "windows": len(windows),
              "fidelity": fidelity(output[held_out], target[held_out]) | {
                  "cka": linear_cka(output[held_out], target[held_out])}}
    if windows.labels is None:
        return result
    labels = windows.labels
    folds = _fold_splits(windows.groups)
    if folds:  # the official protocol: each fold in turn is the test set, the next one the validation set
        splits = []
        for index, fold in enumerate(folds):
            val_fold = folds[(index + 1) % len(folds)]
            group = np.asarray(windows.groups)
            splits.append((np.flatnonzero((group != fold) & (group != val_fold)), np.flatnonzero(group == val_fold),
                           np.flatnonzero(group == fold)))
        result["protocol"] = f"{len(folds)}-fold cross-validation over the official folds"
    else:
        splits = [tuple(windows.split_index(s) for s in ("train", "val", "test"))]
        result["protocol"] = "train / validation / test split"
    for name, features in (("teacher", raw), ("student", output)):
        per_split = [downstream_scores(features[tr], labels[tr], features[va], labels[va], features[te], labels[te],
                                       run_recipe.probe, run_recipe.seed) for tr, va, te in splits]
        result[name] = {key: float(np.mean([s[key] for s in per_split])) for key in per_split[0]}
    return result


def evaluate_run(run_dir: Path, other_data: list[str]) -> dict:
    student, recipe = load_student(run_dir)
    if recipe.teacher.name == "none":
        raise EdgekdError(f"{run_dir}: a teacher-free run has no teacher to compare with; its head accuracy is in "
                          "metrics.json")
    reduction = Reduction.load(run_dir / "reduction.npz")
    report = {"in_domain": evaluate_dataset(recipe, recipe, student, reduction), "out_of_domain": {}}
    for name in other_data:
        other = load_recipe(name)
        report["out_of_domain"][name] = evaluate_dataset(recipe, replace(recipe, data=other.data,
                                                                         window=other.window, source=other.source),
                                                         student, reduction)
    (run_dir / "evaluation.json").write_text(json.dumps(report, indent=2))
    return report
