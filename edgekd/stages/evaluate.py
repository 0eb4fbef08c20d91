"""`edgekd evaluate`: a trained student against its teacher on held-out data — fidelity (cosine, MSE, R², linear CKA)
and downstream probes on frozen embeddings (logistic regression and a small MLP grid) beside a log-mel statistics
baseline, on the run's own test split, on other data of the same domain the user holds out, and on data of other
domains (SEA's finding: specialised students win in domain and lose out of it)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from joblib import Parallel, delayed

from edgekd.cache import teacher_embeddings
from edgekd.data.domain import load_domain_data
from edgekd.data.windows import labelled
from edgekd.errors import EdgekdError
from edgekd.files import check_writable, write_json
from edgekd.metrics import Fidelity, downstream_scores, fidelity
from edgekd.recipe import Recipe, load_evaluation_data
from edgekd.reduction import Reduction
from edgekd.run_dir import RunDir
from edgekd.runtime import select_device
from edgekd.supervision import LogMel
from edgekd.teachers import build_teacher
from edgekd.teachers.base import Teacher
from edgekd.trainer import predict

PARALLEL_WINDOWS = 2000  # labelled windows from which probes are fitted in worker processes


@dataclass
class DatasetEvaluation:
    data: list[dict]  # the datasets evaluated on
    windows: int
    fidelity: Fidelity
    fidelity_windows: int  # the windows fidelity is measured on: the run's test split, or every window of other data
    protocol: str | None = None  # how probes were scored; None without labels
    teacher: dict[str, float] = field(default_factory=dict)  # probe scores on the raw teacher embedding
    student: dict[str, float] = field(default_factory=dict)
    logmel_baseline: dict[str, float] = field(default_factory=dict)  # on the student front-end's log-mel statistics


@dataclass
class EvaluationReport:
    in_domain: DatasetEvaluation  # the run's own test split
    held_out_in_domain: dict[str, DatasetEvaluation] = field(default_factory=dict)  # --same-domain, by what was given
    out_of_domain: dict[str, DatasetEvaluation] = field(default_factory=dict)  # --data

    def to_json(self) -> dict:
        return asdict(self)


def _fold_splits(groups: np.ndarray | None) -> list[str]:
    """Folds, when the dataset has them: the official ones (UrbanSound8K's fold1..10, ESC-50's fold1..5) or a folder's
    own, given as `group` values fold1, fold2, … in its labels.csv."""
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
    return splits, f"{len(folds)}-fold cross-validation over the data's folds ({folds[0]}…{folds[-1]})"


def evaluate_dataset(run_recipe: Recipe, data_recipe: Recipe, teacher: Teacher, student, reduction: Reduction,
                     own: bool) -> DatasetEvaluation:
    """Fidelity on the run's test split (`own`: the run trained on the rest) or on every window of other data, and
    probes by the data's folds or split."""
    data = load_domain_data(data_recipe, teacher.sample_rate)
    windows = data.windows
    raw = teacher_embeddings(teacher, windows, data.teacher_audio, select_device(run_recipe.train.device)).embeddings
    target = reduction.transform(raw)
    output = predict(student, data.student_audio).numpy()
    compared = windows.split_index("test") if own else np.arange(len(windows))
    result = DatasetEvaluation([config.model_dump(mode="json") for config in data_recipe.data], len(windows),
                               fidelity(output[compared], target[compared]), len(compared))
    if windows.labels is None or not labelled(windows.labels).any():
        return result
    labels = windows.labels
    splits, result.protocol = _probe_splits(windows.groups, windows)
    splits = [tuple(windows.labelled_rows(rows) for rows in split) for split in splits]  # unlabelled audio: no probe
    features = {"teacher": raw, "student": output,
                "logmel_baseline": LogMel(student.frontend, data.student_audio).statistics()}
    # every (features, split) probe is independent: fitted side by side, one process per core, once the fits
    # outweigh starting the workers (about 0.8 s here: a 200-window evaluation took 3.0 s alone, 3.8 s in parallel)
    jobs = [(name, split) for name in features for split in splits]
    workers = min(len(jobs), os.cpu_count() or 1) if len(labels) >= PARALLEL_WINDOWS else 1
    scores = Parallel(n_jobs=workers)(
        delayed(downstream_scores)(features[name][tr], labels[tr], features[name][va], labels[va], features[name][te],
                                   labels[te], run_recipe.probe, run_recipe.seed) for name, (tr, va, te) in jobs)
    for name in features:
        per_split = [score for (job, _), score in zip(jobs, scores) if job == name]
        setattr(result, name, {key: float(np.mean([s[key] for s in per_split])) for key in per_split[0]})
    return result


def evaluate_run(run_dir: Path, other_domains: list[str], same_domain: list[str] = (),
                 on_dataset: Callable[[str], None] = lambda column: None) -> EvaluationReport:
    """Every --data and --same-domain is read and checked before any work; evaluation.json is written after each
    dataset, so what is done is kept if a later one fails. `on_dataset` hears each column as its work starts."""
    run = RunDir(run_dir)
    student, recipe = run.load_student()
    if recipe.teacher.name == "none":
        raise EdgekdError(f"{run_dir}: a teacher-free run has no teacher to compare with; its head accuracy is in "
                          "metrics.json")
    reduction = run.load_reduction()
    others = [(spec, load_evaluation_data(spec), True) for spec in same_domain] + \
             [(spec, load_evaluation_data(spec), False) for spec in other_domains]  # in the table's order
    report_path = run_dir / "evaluation.json"
    check_writable(report_path)
    teacher = build_teacher(recipe.teacher)  # loaded once for every column
    on_dataset("in domain (test split)")
    report = EvaluationReport(evaluate_dataset(recipe, recipe, teacher, student, reduction, own=True))
    write_json(report_path, report.to_json())
    for spec, other, in_domain in others:
        on_dataset(f"{'in domain' if in_domain else 'out of domain'}: {spec}")
        data_recipe = replace(recipe, data=other.data, window=other.window or recipe.window, source=other.source)
        evaluated = evaluate_dataset(recipe, data_recipe, teacher, student, reduction, own=False)
        (report.held_out_in_domain if in_domain else report.out_of_domain)[spec] = evaluated
        write_json(report_path, report.to_json())
    return report
