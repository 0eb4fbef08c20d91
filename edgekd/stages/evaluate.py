"""`edgekd evaluate`: a trained student against its teacher on held-out data — fidelity (cosine, MSE, R², linear CKA)
and downstream probes on frozen embeddings (logistic regression and a small MLP grid) beside a log-mel statistics
baseline, on the run's own test split, on other data of the same domain the user holds out, and on data of other
domains (SEA's finding: specialised students win in domain and lose out of it)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from joblib import Parallel, delayed
from sklearn import __version__ as sklearn_version

from edgekd.cache import teacher_embeddings
from edgekd.configs import ProbeConfig, WindowConfig
from edgekd.data.configs import Domain
from edgekd.data.domain import DomainData, load_domain_data
from edgekd.data.windows import Windows, labelled
from edgekd.errors import EdgekdError
from edgekd.files import (
    check_writable,
    content_key,
    keep_json,
    source_digest,
    write_json,
)
from edgekd.metrics import Fidelity, fidelity
from edgekd.paths import cache_root
from edgekd.protocols import (
    LOGREG,
    PROTOCOLS,
    Protocol,
    clip_means,
    fit_and_predict,
    headline,
    scores,
)
from edgekd.recipe import EvaluationData, Recipe, load_evaluation_data
from edgekd.reduction import Reduction
from edgekd.run_dir import RunDir
from edgekd.runtime import select_device
from edgekd.supervision import LogMel
from edgekd.teachers import build_teacher
from edgekd.teachers.base import Teacher
from edgekd.trainer import predict

PARALLEL_EXAMPLES = 2000  # training examples (windows, or clips) from which probes are fitted in worker processes


@dataclass
class DatasetEvaluation:
    data: list[dict]  # the datasets evaluated on
    windows: int
    fidelity: Fidelity
    fidelity_windows: int  # the windows fidelity is measured on: the run's test split, or every window of other data
    rounds: str | None = None  # how probes were trained and tested: the data's folds or its split; None without labels
    no_probe: str = "no labels"  # why there are no probes (rounds None)
    clips: int = 0  # labelled clips the probes saw
    teacher: dict[str, float] = field(default_factory=dict)  # probe scores on the raw teacher embedding, mean over rounds
    student: dict[str, float] = field(default_factory=dict)
    logmel_baseline: dict[str, float] = field(default_factory=dict)  # on the student front-end's log-mel statistics,
    # when asked for (--logmel-baseline)
    std: dict[str, dict[str, float]] = field(default_factory=dict)  # std over folds of each score above, by features


@dataclass
class EvaluationReport:
    protocol: str  # a name in PROTOCOLS
    in_domain: DatasetEvaluation  # the run's own test split
    held_out_in_domain: dict[str, DatasetEvaluation] = field(default_factory=dict)  # --same-domain, by what was given
    out_of_domain: dict[str, DatasetEvaluation] = field(default_factory=dict)  # --data

    def to_json(self) -> dict:
        return asdict(self)


def report_path(run_dir: Path, protocol: str) -> Path:
    """evaluation.json for the window protocol, evaluation-<name>.json for the others: one never overwrites another."""
    return run_dir / ("evaluation.json" if protocol == "window" else f"evaluation-{protocol}.json")


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


def _probe(protocol: Protocol, features: dict[str, np.ndarray], windows: Windows, splits: list[tuple[np.ndarray, ...]],
           probe: ProbeConfig, seed: int) -> dict[str, list[dict[str, float]]]:
    """Each features' scores in each round: the logistic regression, and the best of the protocol's MLP grid on
    validation data, both scored on the round's test windows or clips."""
    clip, clip_labels = windows.clip, windows.clips.labels
    classes = clip_labels.shape[1] if clip_labels.ndim == 2 else len(windows.class_names)

    def examples(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return clip_means(x[rows], clip[rows])[1] if protocol.pool else x[rows]

    def truth(rows: np.ndarray, scored: bool) -> np.ndarray:
        per_clip = protocol.pool or (scored and protocol.vote)
        return clip_labels[np.unique(clip[rows])] if per_clip else windows.labels[rows]

    def score(predicted: np.ndarray, rows: np.ndarray, prefix: str) -> dict[str, float]:
        by_clip = clip_means(predicted, clip[rows])[1] if protocol.vote else predicted
        return scores(by_clip, truth(rows, scored=True), prefix)

    classifiers = list(dict.fromkeys((LOGREG, *protocol.mlp_grid)))  # the grid's linear member is not fitted twice
    # a features' scores depend only on it, the labels, the rounds and the probe: kept, so that the teacher's and
    # the log-mel baseline's probes are fitted once for every student of a teacher on the same data
    keys = {name: content_key({"features": _digest(x), "labels": _digest(clip_labels), "clip": _digest(clip),
                               "rounds": [_digest(rows) for split in splits for rows in split],
                               "protocol": protocol.name, "probe": probe.model_dump(), "seed": seed,
                               "source": source_digest(), "scikit-learn": sklearn_version})
            for name, x in features.items()}
    stored = {name: _read_probe(key) for name, key in keys.items()}
    todo = [name for name in features if stored[name] is None]
    jobs = [(name, index, classifier) for name in todo for index in range(len(splits)) for classifier in classifiers]
    # every job is independent: fitted side by side, one process per core, once the fits outweigh starting the
    # workers (about 0.8 s here: a 200-window evaluation took 3.0 s alone, 3.8 s in parallel)
    examples_per_fit = len(truth(splits[0][0], scored=False))
    workers = max(1, min(len(jobs), os.cpu_count() or 1)) if examples_per_fit >= PARALLEL_EXAMPLES else 1
    predicted = Parallel(n_jobs=workers)(
        delayed(fit_and_predict)(classifier, examples(features[name], splits[index][0]),
                                 truth(splits[index][0], scored=False),
                                 [examples(features[name], rows) for rows in splits[index][1:]], classes, probe,
                                 seed)
        for name, index, classifier in jobs)
    fitted = {job[:2]: {} for job in jobs}
    for (name, index, classifier), found in zip(jobs, predicted):
        fitted[name, index][classifier] = found
    for name in todo:
        stored[name] = []
        for index, (_, val, test) in enumerate(splits):
            by_classifier = fitted[name, index]
            found = score(by_classifier[LOGREG][1], test, "logreg")
            best = max(protocol.mlp_grid, key=lambda c: headline(score(by_classifier[c][0], val, "mlp")))
            stored[name].append(found | score(by_classifier[best][1], test, "mlp") |
                                {"mlp_hidden_layers": len(best.hidden)})
        _write_probe(keys[name], stored[name])
    return stored


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes() + str(values.dtype).encode()).hexdigest()


def _probe_file(key: str) -> Path:
    return cache_root() / "probes" / f"{key}.json"


def _finite(rounds: list[dict[str, float]]) -> bool:
    return all(np.isfinite(list(r.values())).all() for r in rounds)


def _read_probe(key: str) -> list[dict[str, float]] | None:
    try:
        rounds = json.loads(_probe_file(key).read_text())
    except (OSError, ValueError):
        return None  # not fitted yet, or unreadable: fitted again
    return rounds if _finite(rounds) else None


def _write_probe(key: str, rounds: list[dict[str, float]]) -> None:
    if _finite(rounds):  # never keep a non-finite score
        keep_json(_probe_file(key), rounds)


def _embed(run_recipe: Recipe, domain: Domain, teacher: Teacher, student) -> tuple[DomainData, np.ndarray,
                                                                                     np.ndarray]:
    """The domain's windows, the teacher's raw embeddings of them (from the cache when there) and the student's."""
    data = load_domain_data(domain, teacher.sample_rate, run_recipe.student.sample_rate)
    device = select_device(run_recipe.train.device)
    raw = teacher_embeddings(teacher, data.windows, data.teacher_audio, device).embeddings
    return data, raw, predict(student, data.student_audio).numpy()


def held_out_fidelity(run_dir: Path, held_out: EvaluationData, teacher: Teacher) -> tuple[Fidelity, int]:
    """The run's student against its teacher on every window of held-out data of its domain (the fidelity of an
    `evaluate --same-domain` column, without its probes), and how many windows that is."""
    run = RunDir(run_dir)
    student, recipe = run.load_student()
    domain = Domain(held_out.data, held_out.window or recipe.window, recipe.seed, held_out.source)
    _, raw, output = _embed(recipe, domain, teacher, student)
    return fidelity(output, run.load_reduction().transform(raw)), len(output)


def evaluate_dataset(run_recipe: Recipe, domain: Domain, teacher: Teacher, student, reduction: Reduction,
                     own: bool, protocol: Protocol, logmel_baseline: bool = False) -> DatasetEvaluation:
    """Fidelity on the run's test split (`own`: the run trained on the rest) or on every window of other data, and
    probes by the data's folds or split, trained and scored as `protocol` says (on the student front-end's log-mel
    statistics too with `logmel_baseline`)."""
    data, raw, output = _embed(run_recipe, domain, teacher, student)
    windows, target = data.windows, reduction.transform(raw)
    compared = windows.split_index("test") if own else np.arange(len(windows))
    result = DatasetEvaluation([config.model_dump(mode="json") for config in domain.datasets], len(windows),
                               fidelity(output[compared], target[compared]), len(compared))
    if windows.labels is None or not labelled(windows.labels).any():
        return result
    unlearnable = _why_no_probe(windows.labels[labelled(windows.labels)])
    if unlearnable:
        result.no_probe = unlearnable
        return result
    splits, result.rounds = _probe_splits(windows.groups, windows)
    splits = [tuple(windows.labelled_rows(rows) for rows in split) for split in splits]  # unlabelled audio: no probe
    result.clips = len(np.unique(windows.clip[windows.labelled_rows(np.arange(len(windows)))]))
    features = {"teacher": raw, "student": output}
    if logmel_baseline:  # a third of a cold evaluation's probe fits: asked for, not by default
        features["logmel_baseline"] = LogMel(student.frontend, data.student_audio).statistics()
    for name, per_round in _probe(protocol, features, windows, splits, run_recipe.probe, run_recipe.seed).items():
        setattr(result, name, {key: float(np.mean([r[key] for r in per_round])) for key in per_round[0]})
        if len(per_round) > 1:
            result.std[name] = {key: float(np.std([r[key] for r in per_round])) for key in per_round[0]
                                if key != "mlp_hidden_layers"}
    return result


def _why_no_probe(labels: np.ndarray) -> str | None:
    """Why the labelled rows leave a probe nothing to learn (a probe tells classes apart); None when they do not."""
    if labels.ndim == 1:
        return None if len(np.unique(labels)) > 1 else "1 class labelled: a probe needs 2 or more"
    varying = (labels > 0).any(axis=0) & (labels <= 0).any(axis=0)
    return None if varying.any() else "no tag both present and absent: nothing for a probe to learn"


def _protocol_window(window: WindowConfig, protocol: Protocol) -> WindowConfig:
    return window if protocol.hop_seconds is None else window.model_copy(update={"hop_seconds": protocol.hop_seconds})


def evaluate_run(run_dir: Path, other_domains: list[str], same_domain: list[str] = (), protocol_name: str = "window",
                 on_dataset: Callable[[str], None] = lambda column: None,
                 logmel_baseline: bool = False) -> EvaluationReport:
    """Every --data and --same-domain is read and checked before any work; the report is written after each
    dataset, so what is done is kept if a later one fails. `on_dataset` hears each column as its work starts."""
    protocol = PROTOCOLS[protocol_name]
    run = RunDir(run_dir)
    student, recipe = run.load_student()
    if recipe.teacher.name == "none":
        raise EdgekdError(f"{run_dir}: a teacher-free run has no teacher to compare with; its head accuracy is in "
                          "metrics.json")
    reduction = run.load_reduction()
    others = [(spec, load_evaluation_data(spec, "--same-domain"), True) for spec in same_domain] + \
             [(spec, load_evaluation_data(spec), False) for spec in other_domains]  # in the table's order
    path = report_path(run_dir, protocol.name)
    check_writable(path)
    teacher = build_teacher(recipe.teacher)  # loaded once for every column
    on_dataset("in domain (test split)")
    own = replace(recipe.domain(), window=_protocol_window(recipe.window, protocol))
    report = EvaluationReport(protocol.name, evaluate_dataset(recipe, own, teacher, student, reduction, True, protocol,
                                                               logmel_baseline))
    write_json(path, report.to_json())
    for spec, other, in_domain in others:
        on_dataset(f"{'in domain' if in_domain else 'out of domain'}: {spec}")
        domain = Domain(other.data, _protocol_window(other.window or recipe.window, protocol), recipe.seed,
                        other.source)
        evaluated = evaluate_dataset(recipe, domain, teacher, student, reduction, False, protocol,
                                     logmel_baseline)
        (report.held_out_in_domain if in_domain else report.out_of_domain)[spec] = evaluated
        write_json(path, report.to_json())
    return report
