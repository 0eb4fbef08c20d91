"""`edgekd evaluate`: a trained student against its teacher on held-out data — fidelity (cosine, MSE, R², linear CKA)
and downstream probes on frozen embeddings (logistic regression and a small MLP grid), in domain and, for each other
dataset given, out of domain (SEA's finding: specialised students win in domain and lose out of it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from edgekd.cache import teacher_embeddings
from edgekd.data.domain import load_domain_data
from edgekd.data.windows import labelled
from edgekd.errors import EdgekdError
from edgekd.files import check_writable, write_json
from edgekd.metrics import Fidelity, downstream_scores, fidelity
from edgekd.recipe import Recipe, load_recipe
from edgekd.reduction import Reduction
from edgekd.run_dir import RunDir
from edgekd.runtime import select_device
from edgekd.teachers import build_teacher
from edgekd.trainer import predict


@dataclass
class DatasetEvaluation:
    data: dict  # the data section evaluated on
    windows: int
    fidelity: Fidelity  # on the test split
    protocol: str | None = None  # how probes were scored; None without labels
    teacher: dict[str, float] = field(default_factory=dict)  # probe scores on the raw teacher embedding
    student: dict[str, float] = field(default_factory=dict)


@dataclass
class EvaluationReport:
    in_domain: DatasetEvaluation
    out_of_domain: dict[str, DatasetEvaluation] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def _fold_splits(groups: np.ndarray | None) -> list[str]:
    """Official folds, when the dataset has them (UrbanSound8K's fold1..10, ESC-50's fold1..5)."""
    folds = sorted({g for g in ([] if groups is None else set(groups)) if g.startswith("fold")}, key=lambda g: int(g[4:]) if g[4:].isdigit() else 0)
    return folds if len(folds) >= 3 else []


def _probe_splits(groups: np.ndarray | None, windows) -> tuple[list[tuple[np.ndarray, ...]], str]:
    """(train, validation, test) windows per round, and the protocol: the official folds when there are any (each
    fold in turn the test set, the next one the validation set), else the data's own split."""
    folds = _fold_splits(groups)
    if not folds:
        return [tuple(windows.split_index(s) for s in ("train", "val", "test"))], "train / validation / test split"
    group = np.asarray(groups)
    splits = []
    for index, fold in enumerate(folds):
        val_fold = folds[(index + 1) % len(folds)]
        splits.append((np.flatnonzero((group != fold) & (group != val_fold)), np.flatnonzero(group == val_fold),
                       np.flatnonzero(group == fold)))
    return splits, f"{len(folds)}-fold cross-validation over the official folds"


def evaluate_dataset(run_recipe: Recipe, data_recipe: Recipe, student, reduction: Reduction) -> DatasetEvaluation:
    teacher = build_teacher(run_recipe.teacher)
    data = load_domain_data(data_recipe, teacher.sample_rate)
    windows = data.windows
    raw = teacher_embeddings(teacher, windows, data.teacher_audio, select_device(run_recipe.train.device)).embeddings
    target = reduction.transform(raw)
    output = predict(student, data.student_audio).numpy()
    held_out = windows.split_index("test")
    result = DatasetEvaluation(data_recipe.to_dict()["data"], len(windows),
                               fidelity(output[held_out], target[held_out]))
    if windows.labels is None or not labelled(windows.labels).any():
        return result
    labels = windows.labels
    splits, result.protocol = _probe_splits(windows.groups, windows)
    splits = [tuple(windows.labelled_rows(rows) for rows in split) for split in splits]  # unlabelled audio: no probe
    for name, features in (("teacher", raw), ("student", output)):
        per_split = [downstream_scores(features[tr], labels[tr], features[va], labels[va], features[te], labels[te],
                                       run_recipe.probe, run_recipe.seed) for tr, va, te in splits]
        setattr(result, name, {key: float(np.mean([s[key] for s in per_split])) for key in per_split[0]})
    return result


def evaluate_run(run_dir: Path, other_data: list[str]) -> EvaluationReport:
    run = RunDir(run_dir)
    student, recipe = run.load_student()
    if recipe.teacher.name == "none":
        raise EdgekdError(f"{run_dir}: a teacher-free run has no teacher to compare with; its head accuracy is in "
                          "metrics.json")
    reduction = run.load_reduction()
    others = {name: load_recipe(name) for name in other_data}  # every recipe checked before any work
    check_writable(run_dir / "evaluation.json")
    report = EvaluationReport(evaluate_dataset(recipe, recipe, student, reduction))
    for name, other in others.items():
        report.out_of_domain[name] = evaluate_dataset(
            recipe, replace(recipe, data=other.data, window=other.window, source=other.source), student, reduction)
    write_json(run_dir / "evaluation.json", report.to_json())
    return report
