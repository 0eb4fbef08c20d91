"""`edgekd distill`: recipe → data + teacher → teacher-embedding cache → reduction → trainer → student checkpoint.

Writes the run directory (see edgekd/run_dir.py) and returns the run's metrics.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from pydantic import TypeAdapter

from edgekd import __version__
from edgekd.cache import CachedEmbeddings, teacher_embeddings
from edgekd.configs import QatConfig
from edgekd.data.domain import DomainData, load_domain_data
from edgekd.data.windows import WindowAudio, Windows
from edgekd.distillation import DistillationModel
from edgekd.errors import EdgekdError
from edgekd.extras import check_installed
from edgekd.files import write_json
from edgekd.losses import build_loss
from edgekd.methods.registry import method_class
from edgekd.metrics import (
    Fidelity,
    fidelity,
    head_fidelity,
    probe_accuracy,
)
from edgekd.profile import GraphFacts
from edgekd.profile.modules import measure_module
from edgekd.quantisation_aware import QuantisationAwareStudent
from edgekd.recipe import Recipe
from edgekd.reduction import Reduction, fit_reduction
from edgekd.run_dir import RunDir, method_context
from edgekd.runtime import (
    barrier,
    init_from_environment,
    rank_and_world,
    seeded,
    select_device,
)
from edgekd.students import build_student
from edgekd.supervision import LogMel, Supervision
from edgekd.teachers import build_teacher
from edgekd.teachers.base import Teacher
from edgekd.trainer import EpochLog, predict, train_student


def _ignore(*_args) -> None:
    return None


@dataclass
class Hooks:
    """How a caller (the CLI) follows progress; every hook defaults to doing nothing."""

    stage: Callable[[str], None] = _ignore
    teacher_progress: Callable[[int, int], None] = _ignore
    step: Callable[[int, int, int], None] = _ignore
    epoch: Callable[[EpochLog], None] = _ignore
    # asked on rank 0 after each epoch whether to stop (a search's pruner): training then raises TrainingStopped on
    # every rank, the run keeping its checkpoint; under torchrun every rank passes one, rank 0's decides
    stop: Callable[[EpochLog], bool] | None = None


@dataclass
class Taught:
    """What the teacher gives the run: its raw embeddings, the fitted reduction and the reduced targets."""

    raw: np.ndarray
    reduction: Reduction
    targets: np.ndarray
    cached: CachedEmbeddings
    facts: dict | None  # the teacher's sizes (GraphFacts + runs per window), when edgekd can export it


@dataclass
class NetworkSummary:
    """A network beside the other: its sizes as `edgekd profile` measures its FP32 export (absent when edgekd
    cannot export it), flattened into its JSON entry."""

    name: str
    dim: int | None = None
    facts: GraphFacts | None = None
    macs_per_window: int | None = None
    runs_per_window: int | None = None
    cache: dict | None = None  # the teacher cache: rows computed and reused, directory

    def to_json(self) -> dict:
        data = {"name": self.name, **(asdict(self.facts) if self.facts else {})}
        extra = {"runs_per_window": self.runs_per_window, "macs_per_window": self.macs_per_window, "dim": self.dim,
                 "cache": self.cache}
        return data | {key: value for key, value in extra.items() if value is not None}

    @classmethod
    def from_json(cls, data: dict) -> NetworkSummary:
        return cls(data["name"], data.get("dim"), GraphFacts.from_json(data) if "params" in data else None,
                   data.get("macs_per_window"), data.get("runs_per_window"), data.get("cache"))


@dataclass
class ProbeScores:
    student: float
    logmel_baseline: float
    teacher: float | None = None
    teacher_reduced: float | None = None


@dataclass
class TrainingSummary:
    epochs: int
    best_epoch: int
    best_val_cosine: float | None
    best_val_accuracy: float | None
    device: str
    training_seconds: float
    seconds: float
    qat: dict | None = None  # quantisation-aware fine-tuning: its epochs, best epoch and validation cosine, seconds


@dataclass
class DistillMetrics:
    """metrics.json: the student beside its teacher. Sections that do not apply to a run are left out."""

    edgekd_version: str
    recipe: str
    recipe_digest: str
    seed: int
    windows: dict[str, int]
    teacher: NetworkSummary
    student: NetworkSummary
    training: TrainingSummary
    methods: dict
    skipped_audio: list[dict] = field(default_factory=list)
    reduction: dict | None = None
    fidelity: dict[str, Fidelity] | None = None
    ratios: dict[str, float] | None = None
    head: dict[str, float] | None = None
    probe_metric: str | None = None
    probe: ProbeScores | None = None

    def to_json(self) -> dict:
        data = {key: value for key, value in asdict(self).items() if value is not None}
        data |= {"teacher": self.teacher.to_json(), "student": self.student.to_json()}
        if self.probe is not None:  # the teacher's columns only when there is a teacher
            data["probe"] = {key: value for key, value in data["probe"].items() if value is not None}
        return data

    @classmethod
    def from_json(cls, data: dict) -> DistillMetrics:
        networks = {key: NetworkSummary.from_json(data[key]) for key in ("teacher", "student")}
        return TypeAdapter(cls).validate_python(data | {key: asdict(n) for key, n in networks.items()})


@dataclass
class DistillResult:
    run_dir: Path
    metrics: DistillMetrics | None  # None on torchrun workers other than rank 0: rank 0 reports
    history: list[EpochLog] = field(default_factory=list)


def build_cache(recipe: Recipe, strict: bool = False, on_progress=None) -> CachedEmbeddings:
    """Teacher inference alone: fill the teacher-embedding cache for the recipe's data."""
    teacher = build_teacher(recipe.teacher)
    if not teacher.embeds:
        raise EdgekdError(f"{recipe.source}: teacher 'none' has no embeddings to cache")
    data = load_domain_data(recipe.domain(), teacher.sample_rate, recipe.student.sample_rate, strict)
    return teacher_embeddings(teacher, data.windows, data.teacher_audio, select_device(recipe.train.device),
                              on_progress=on_progress)


def distill(recipe: Recipe, run_dir: Path, resume: bool = False, force: bool = False, strict: bool = False,
            hooks: Hooks | None = None) -> DistillResult:
    started = time.perf_counter()
    leader = init_from_environment() == 0  # under torchrun: join the process group; rank 0 writes the run
    stop = hooks.stop if hooks else None  # every rank takes part in the decision
    hooks = hooks if hooks and leader else Hooks()
    target = RunDir(run_dir)
    target.check_claim(recipe, resume, force)
    replacing = force and not resume and target.has_run()
    run = target.staging() if replacing else target  # the finished run is replaced only by a finished one
    barrier()
    if recipe.train.num_threads:
        torch.set_num_threads(recipe.train.num_threads)
    teacher = _teacher(recipe)
    hooks.stage("decoding new audio into the audio store, indexing windows")
    data = load_domain_data(recipe.domain(), teacher.sample_rate, recipe.student.sample_rate, strict)
    _refuse_methods_without_labels(recipe, data.windows)
    if data.discarded:
        hooks.stage(f"removed {len(data.discarded)} damaged audio-store shard(s) (checksum or size wrong: "
                    f"{', '.join(data.discarded[:3])}); their clips were decoded again")
    if data.skipped:
        hooks.stage(f"skipped {len(data.skipped)} unusable audio file(s), listed in metrics.json "
                    f"(first: {data.skipped[0]['path']}: {data.skipped[0]['reason']})")
    with run.removed_on_failure(leader and not run.path.exists()):  # a new run failing before training leaves nothing
        if leader:
            run.start(recipe, resume)
        barrier()
        taught = _teach(recipe, teacher, data, run, leader, hooks) if teacher.embeds else None
        model, supervision = _distillation_model(recipe, data, taught, hooks)
        student_facts = _measure_student(recipe, model, data, hooks) if leader else None
    hooks.stage("training the student")
    trained = time.perf_counter()
    with run.removed_on_failure(leader and replacing):  # a staged run cannot be resumed: it goes on failure
        history = train_student(model, data.student_audio, supervision.rows, supervision.train,
                                data.windows.split_index("val"), recipe.train, recipe.seed, run.checkpoint,
                                resume=resume, on_step=hooks.step, on_epoch=_epoch_logger(run, leader, hooks),
                                should_stop=stop)
    training_seconds = time.perf_counter() - trained
    if not leader:
        return DistillResult(run_dir, None, history)
    run.save_student(model.cpu().eval().deployable(), recipe, model.head)
    run.write_history(history)
    qat = recipe.train.qat and _fine_tune_quantised(recipe, model, data, supervision, run, resume, hooks)
    hooks.stage("evaluating")
    metrics = _evaluate(recipe, data, taught, model, supervision, student_facts)
    metrics.training = _training_summary(history, training_seconds, time.perf_counter() - started, recipe, qat)
    run.write_metrics(metrics.to_json())
    if replacing:
        target.replace_with(run)
    return DistillResult(run_dir, metrics, history)


def distill_once(recipe: Recipe, run_dir: Path) -> DistillMetrics:
    """The metrics of the run in `run_dir` if it finished with this very recipe, else of a fresh distillation there
    (for searches and benchmarks that run many recipes and should continue where an interruption left them)."""
    finished = RunDir(run_dir).finished_metrics(recipe)
    if finished is not None:
        return DistillMetrics.from_json(finished)
    return distill(recipe, run_dir, force=True).metrics


def _epoch_logger(run: RunDir, leader: bool, hooks: Hooks) -> Callable[[EpochLog], None]:
    def on_epoch(log: EpochLog) -> None:
        if leader:
            run.append_epoch(log)
        hooks.epoch(log)

    return on_epoch


def _teach(recipe: Recipe, teacher: Teacher, data: DomainData, run: RunDir, leader: bool, hooks: Hooks) -> Taught:
    """Teacher inference through the cache, its sizes, and the reduction φ fitted on the training windows."""
    windows = data.windows
    train = windows.split_index("train")
    hooks.stage("teacher inference")
    cached = teacher_embeddings(teacher, windows, data.teacher_audio, select_device(recipe.train.device),
                                on_progress=hooks.teacher_progress)
    if cached.discarded:
        hooks.stage(f"removed {len(cached.discarded)} damaged cache shard(s) from {cached.directory} (checksum or "
                    f"size wrong: {', '.join(cached.discarded[:3])}); their rows were computed again")
    if cached.directory is not None:
        hooks.stage(f"reused cached teacher embeddings from {cached.directory}" if cached.hit else
                    f"cached teacher embeddings in {cached.directory} ({cached.computed} computed, "
                    f"{cached.reused} reused)")
    facts = _teacher_profile(teacher, cached.directory, recipe.window.seconds) if leader else None
    loudness = _loudness(data.teacher_audio, train) if recipe.reduction.sample == "loudness" else None
    groups = list(windows.groups[train]) if windows.groups is not None else None
    reduction = fit_reduction(recipe.reduction, cached.embeddings, recipe.seed, groups, loudness, rows=train)
    if leader:
        run.save_reduction(reduction)
    return Taught(cached.embeddings, reduction, reduction.transform(cached.embeddings), cached, facts)


def _loudness(audio: WindowAudio, rows: np.ndarray, batch: int = 1024) -> np.ndarray:
    """dB RMS of each window in `rows`, read batch by batch (the `loudness` reduction sample)."""
    return np.concatenate([20 * np.log10(np.sqrt((audio[rows[i : i + batch]] ** 2).mean(1)) + 1e-10)
                           for i in range(0, len(rows), batch)])


def _teacher_profile(teacher: Teacher, cache_dir: Path | None, window_seconds: float) -> dict | None:
    """Teacher sizes, computed once per cache entry (exporting a large teacher takes a while); None for a teacher
    edgekd cannot export (precomputed) or that is already an ONNX file (profile that file directly)."""
    path = cache_dir / "teacher_profile.json" if cache_dir else None
    if path and path.is_file():
        try:
            cached = json.loads(path.read_text())
            GraphFacts.from_json(cached)  # every figure the size table reads
            return cached
        except (OSError, ValueError, KeyError, TypeError):
            pass  # damaged: measured again and rewritten
    deployable = teacher.deployable(window_seconds)
    if deployable is None:
        return None
    module, example, runs_per_window = deployable
    facts = asdict(measure_module(module, example, "input"))
    facts |= {"runs_per_window": runs_per_window, "macs_per_window": facts["macs"] * runs_per_window}
    if path:
        write_json(path, facts)
    return facts


def _refuse_methods_without_labels(recipe: Recipe, windows: Windows) -> None:
    """Before teacher inference (minutes to hours): a method that needs a class label on every clip."""
    one_label_each = windows.fully_labelled and windows.labels.ndim == 1
    unlabelled = [name for name in recipe.methods.enabled() if method_class(name).needs_labels and not one_label_each]
    if unlabelled:
        has = ("none" if windows.labels is None else "multi-label tags" if windows.labels.ndim != 1
               else "unlabelled clips beside labelled ones")
        raise EdgekdError(f"{recipe.source}: methods.{unlabelled[0]} needs one class label per clip; the data "
                          f"'{recipe.data_names}' has {has}")


def _distillation_model(recipe: Recipe, data: DomainData, taught: Taught | None, hooks: Hooks
                        ) -> tuple[DistillationModel, Supervision]:
    """The student, with what the recipe's methods prepare before training and attach to it."""
    windows = data.windows
    dim = taught.reduction.dim if taught else recipe.reduction.dim
    with seeded(recipe.seed):
        student = build_student(recipe.student, dim)
    methods = recipe.methods.build(method_context(recipe))
    if methods:
        hooks.stage(f"methods: {', '.join(recipe.methods.enabled())} (preparing supervision)")
    # labels reach the methods only when every window has one (a partly labelled set is for the probes)
    supervision = Supervision(recipe.seed, windows.labels if windows.fully_labelled else None, windows.clip,
                              windows.split_index("train"),
                              taught.raw if taught else None, LogMel(student.frontend, data.student_audio),
                              report={"enabled": recipe.methods.enabled()})
    if taught:
        supervision.rows["target"] = taught.targets.astype(np.float32)
    for method in methods:
        method.prepare(supervision)
    model = DistillationModel(student, build_loss(recipe.loss), methods)
    for method in methods:
        method.attach(model, supervision)
    return model, supervision


def _measure_student(recipe: Recipe, model: DistillationModel, data: DomainData, hooks: Hooks) -> GraphFacts:
    """Exporting to measure is the leader's job; workers go straight to training."""
    facts = measure_module(model.deployable(), torch.from_numpy(data.student_audio[:1]))
    hooks.stage(f"student {recipe.student.name}: {facts.params - facts.frontend_params:,} parameters (and "
                f"{facts.frontend_params:,} front-end constants), {facts.storage_bytes:,} B FP32 "
                f"storage, {facts.activation_bytes:,} B activation memory (as `edgekd profile` will measure the "
                "export)")
    return facts


def _training_summary(history: list[EpochLog], training_seconds: float, seconds: float, recipe: Recipe,
                      qat: dict | None) -> TrainingSummary:
    best = max(history, key=EpochLog.score)
    return TrainingSummary(len(history), best.epoch, best.val_cosine, best.val_accuracy,
                           str(select_device(recipe.train.device)), round(training_seconds, 1), round(seconds, 1), qat)


def _teacher(recipe: Recipe) -> Teacher:
    """The recipe's teacher; before any work, a refusal of quantisation-aware fine-tuning where it cannot run."""
    teacher = build_teacher(recipe.teacher)
    if recipe.train.qat is None:
        return teacher
    why = quantisation_aware_refusal(recipe, teacher.embeds)
    if why:
        raise EdgekdError(f"{recipe.source}: train.qat: {why}: drop train.qat")
    check_installed("executorch", "train.qat (quantisation-aware fine-tuning)")
    return teacher


def quantisation_aware_refusal(recipe: Recipe, embeds: bool) -> str | None:
    """Why quantisation-aware fine-tuning cannot run for `recipe` (it regresses the teacher's reduced embeddings with
    the embedding loss alone, in one process), or None; `embeds`: whether the recipe's teacher gives embeddings."""
    if not embeds:
        return f"it fine-tunes on the teacher's embeddings and teacher '{recipe.teacher.name}' gives none"
    methods = recipe.methods.enabled()
    if methods:
        return f"it fine-tunes with the embedding loss alone, not yet with methods ({', '.join(methods)})"
    if rank_and_world()[1] > 1:
        return "it runs in one process, not yet under torchrun"
    return None


def quantisation_aware_run(run_dir: Path, qat: QatConfig, out_dir: Path, asked: str,
                           hooks: Hooks | None = None) -> DistillResult:
    """The finished run in `run_dir` fine-tuned with quantisation-aware training, as a run of its own in `out_dir`
    (its recipe: the run's, with `train.qat`). Its training resumes from the run's final checkpoint, so nothing is
    trained again and `run_dir` is left as it was; a finished one is read back, an interrupted one resumed, and one
    of another `qat` is replaced only once the new one has finished. `asked`: the option that asked, for errors."""
    source = RunDir(run_dir)
    base = source.recipe()
    recipe = replace(base, train=base.train.model_copy(update={"qat": qat}))
    why = quantisation_aware_refusal(recipe, build_teacher(recipe.teacher).embeds)
    if why:
        raise EdgekdError(f"{asked}: {why} (in {source.recipe_file}): export without {asked}")
    check_installed("executorch", f"{asked} (quantisation-aware fine-tuning)")
    if not (source.metrics_file.is_file() and source.checkpoint.is_file()):
        raise EdgekdError(f"{run_dir}: {asked} fine-tunes a finished run; this one has no metrics.json or "
                          "checkpoint.pt: finish it with `edgekd distill --resume`")
    target = RunDir(out_dir)
    finished = target.finished_metrics(recipe)
    if finished is not None:
        return DistillResult(out_dir, DistillMetrics.from_json(finished))
    if target.recipe_file.is_file() and target.recipe().digest() == recipe.digest():
        return distill(recipe, out_dir, resume=True, hooks=hooks)  # interrupted while fine-tuning
    target.check_claim(recipe, resume=False, force=True)  # a folder of other files is never replaced
    staged = target.staging() if target.path.exists() else target
    staged.path.mkdir(parents=True)
    shutil.copyfile(source.checkpoint, staged.checkpoint)
    shutil.copyfile(source.history_file, staged.history_file)
    result = distill(recipe, staged.path, resume=True, hooks=hooks)
    if staged is not target:
        target.replace_with(staged)
    return replace(result, run_dir=out_dir)


def _fine_tune_quantised(recipe: Recipe, model: DistillationModel, data: DomainData, supervision: Supervision,
                         run: RunDir, resume: bool, hooks: Hooks) -> dict:
    """Quantisation-aware fine-tuning of the trained student (edgekd/quantisation_aware.py) with the trainer, its
    own checkpoint resumable: the student takes its best epoch's weights (student.pt is saved again), so the
    evaluation, the FP32 exports and the gate's reference are the model the integer files quantise."""
    qat = recipe.train.qat
    hooks.stage(f"quantisation-aware fine-tuning ({qat.epochs} epoch(s))")
    started = time.perf_counter()
    example = torch.from_numpy(LogMel(model.student.frontend, data.student_audio)[supervision.train[:2]])
    with seeded(recipe.seed):
        aware = QuantisationAwareStudent(model.student, example)
    tuned = DistillationModel(aware, build_loss(recipe.loss), [])
    config = recipe.train.model_copy(update={"epochs": qat.epochs, "lr": qat.lr or recipe.train.lr / 10,
                                             "warmup_epochs": 0, "early_stopping": None, "ema": None, "qat": None})
    history = train_student(tuned, data.student_audio, {"target": supervision.rows["target"]}, supervision.train,
                            data.windows.split_index("val"), config, recipe.seed, run.qat_checkpoint, resume=resume,
                            on_step=hooks.step, on_epoch=hooks.epoch)
    tuned.cpu().eval()
    model.student.load_state_dict(aware.trained_student(model.student).state_dict())
    run.save_student(model.deployable(), recipe, model.head)
    best = max(history, key=EpochLog.score)
    return {"epochs": len(history), "best_epoch": best.epoch, "best_val_cosine": best.val_cosine,
            "seconds": round(time.perf_counter() - started, 1)}


def _evaluate(recipe: Recipe, data: DomainData, taught: Taught | None, model: DistillationModel,
              supervision: Supervision, student_facts: GraphFacts) -> DistillMetrics:
    windows = data.windows
    train, val, test = (windows.split_index(s) for s in ("train", "val", "test"))
    # the deployed network alone: evaluation runs no peer, attention teacher or training-only branch
    embeddings = predict(model.deployable(), data.student_audio)
    student_out = embeddings.numpy()
    teacher = NetworkSummary(recipe.teacher.name)
    metrics = DistillMetrics(
        __version__, recipe.name, recipe.digest(), recipe.seed,
        {"train": len(train), "val": len(val), "test": len(test)}, teacher,
        NetworkSummary(recipe.student.name, int(student_out.shape[1]), student_facts, student_facts.macs),
        training=None, methods=supervision.report, skipped_audio=data.skipped)
    if taught is not None:
        teacher.dim = int(taught.raw.shape[1])
        teacher.cache = {"computed": taught.cached.computed, "reused": taught.cached.reused,
                         "directory": str(taught.cached.directory) if taught.cached.directory else None}
        if taught.facts:
            teacher.facts = GraphFacts.from_json(taught.facts)
            teacher.runs_per_window, teacher.macs_per_window = taught.facts["runs_per_window"], taught.facts[
                "macs_per_window"]
            metrics.ratios = {"storage": teacher.facts.storage_bytes / student_facts.storage_bytes,
                              "activation": teacher.facts.activation_bytes / student_facts.activation_bytes}
        reduction = taught.reduction
        metrics.reduction = {"method": reduction.method, "dim": reduction.dim, "sample": recipe.reduction.sample,
                             "explained_variance": None if np.isnan(reduction.explained_variance)
                             else reduction.explained_variance}
        metrics.fidelity = {split: fidelity(student_out[rows], taught.targets[rows])
                            for split, rows in (("val", val), ("test", test))}
    if model.head is not None:
        with torch.no_grad():
            logits = model.head(embeddings[test]).numpy()
        teacher_log_p = supervision.teacher_log_probabilities
        metrics.head = head_fidelity(logits, windows.labels[test], None if teacher_log_p is None
                                     else teacher_log_p[test])
    probe_train, probe_test = windows.labelled_rows(train), windows.labelled_rows(test)
    if len(probe_train) and len(probe_test):
        metrics.probe_metric = "micro_auprc" if windows.labels.ndim == 2 else "accuracy"
        metrics.probe = _probes(recipe, windows, student_out, supervision.logmel, taught, probe_train, probe_test)
    return metrics


def _probes(recipe: Recipe, windows: Windows, student_out: np.ndarray, logmel: LogMel, taught: Taught | None,
            train: np.ndarray, test: np.ndarray) -> ProbeScores:
    labels = windows.labels

    def probe(features: Callable[[np.ndarray], np.ndarray]) -> float:
        return probe_accuracy(features(train), labels[train], features(test), labels[test], recipe.probe, recipe.seed)

    scores = ProbeScores(probe(student_out.__getitem__), probe(logmel.statistics))
    if taught is not None:
        scores.teacher, scores.teacher_reduced = probe(taught.raw.__getitem__), probe(taught.targets.__getitem__)
    return scores
