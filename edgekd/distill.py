"""`edgekd distill`: recipe → data + teacher → teacher-embedding cache → reduction → trainer → student checkpoint.

Writes to the run directory: recipe.yaml (resolved), checkpoint.pt (training state, for --resume), student.pt,
reduction.npz, history.jsonl, training_curves.png and metrics.json.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

from edgekd import __version__
from edgekd.cache import teacher_embeddings
from edgekd.config import Recipe, recipe_from_dict
from edgekd.data import Windows, load_clips, make_windows, resample
from edgekd.distributed import barrier, init_from_environment, local_device
from edgekd.errors import EdgekdError
from edgekd.evaluate import fidelity, head_fidelity, linear_cka, probe_accuracy
from edgekd.export import export_onnx
from edgekd.files import atomic_write
from edgekd.methods import Supervision, build_distillation_model, logmel_statistics, prepare_supervision
from edgekd.methods.model import DistillationModel
from edgekd.methods.retrieval import RetrievalAugmented
from edgekd.profile import analyse_graph
from edgekd.reduction import Reduction, fit_reduction
from edgekd.students import build_student
from edgekd.teachers import build_teacher
from edgekd.train import EpochLog, predict, train_student


def _ignore(*_args) -> None:
    return None


@dataclass
class Hooks:
    """How a caller (the CLI) follows progress; every hook defaults to doing nothing."""

    stage: Callable[[str], None] = _ignore
    teacher_progress: Callable[[int, int], None] = _ignore
    step: Callable[[int, int, int], None] = _ignore
    epoch: Callable[[EpochLog], None] = _ignore


@dataclass
class DomainData:
    windows: Windows
    student_audio: np.ndarray  # windows resampled to the student's own rate
    skipped: list[dict]  # audio files left out, with the reason


@dataclass
class DistillResult:
    run_dir: Path
    metrics: dict
    history: list[EpochLog] = field(default_factory=list)


def load_domain_data(recipe: Recipe, sample_rate: int, strict: bool = False) -> DomainData:
    """Windows of the recipe's data loaded at `sample_rate` (the teacher's, unless the data sets its own)."""
    clips = load_clips(recipe.data, recipe.seed, sample_rate, strict)
    windows = make_windows(clips, recipe.window.seconds, recipe.window.hop_seconds)
    for split in ("train", "val", "test"):
        if len(windows.split_index(split)) == 0:
            raise EdgekdError(f"{recipe.source}: the data has no '{split}' windows; add clips or change the split")
    student_audio = resample(windows.audio, windows.sample_rate, recipe.student.sample_rate)
    return DomainData(windows, student_audio, clips.skipped)


def load_run_recipe(run_dir: Path) -> Recipe:
    path = run_dir / "recipe.yaml"
    if not path.is_file():
        raise EdgekdError(f"{run_dir}: not a run directory (no recipe.yaml); run `edgekd distill` first")
    return recipe_from_dict(yaml.safe_load(path.read_text()), str(path))


def load_student(run_dir: Path) -> tuple[torch.nn.Module, Recipe]:
    recipe = load_run_recipe(run_dir)
    path = run_dir / "student.pt"
    if not path.is_file():
        raise EdgekdError(f"{run_dir}: no student.pt; the distillation did not finish (continue it with --resume)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    student = build_student(recipe.student, saved["embedding_dim"])
    retrieval = recipe.methods.retrieval
    if retrieval is not None and retrieval.at_inference:  # the knowledge base ships with the student
        entries = torch.ones_like(saved["state_dict"]["knowledge_base_keys"].T)  # shape only; loaded next
        student = RetrievalAugmented(student, entries, retrieval.temperature, retrieval.mix)
    student.load_state_dict(saved["state_dict"])
    return student.eval(), recipe


def size_profile(module: torch.nn.Module, example: torch.Tensor, input_name: str = "audio") -> dict:
    """The same graph analysis `edgekd profile` runs, on an FP32 ONNX export made for the purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, example, Path(tmp) / "model.onnx", input_name=input_name)
        facts, _ = analyse_graph(path)
    return facts


def _teacher_profile(teacher, cache_dir: Path | None, window_seconds: float) -> dict | None:
    """Teacher sizes, computed once per cache entry (exporting a large teacher takes a while); None for a teacher
    edgekd cannot run (precomputed) or that is already an ONNX file (profile that file directly)."""
    path = cache_dir / "teacher_profile.json" if cache_dir else None
    if path and path.is_file():
        return json.loads(path.read_text())
    deployable = teacher.deployable(window_seconds)
    if deployable is None:
        return None
    module, example, runs_per_window = deployable
    facts = size_profile(module, example, "input")
    facts["runs_per_window"] = runs_per_window
    facts["macs_per_window"] = facts["macs"] * runs_per_window
    _write_json(path, facts)
    return facts


def _write_json(path: Path, data) -> None:
    atomic_write(path, lambda handle: handle.write(json.dumps(data, indent=2)), mode="w")


def _plot_history(history: list[EpochLog], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [h.train_loss for h in history], label="train")
    left.plot(epochs, [h.val_loss for h in history], label="validation")
    left.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    left.legend()
    if history[0].val_cosine is not None:
        right.plot(epochs, [h.val_cosine for h in history], color="tab:green", label="cosine to teacher")
    if history[0].val_accuracy is not None:
        right.plot(epochs, [h.val_accuracy for h in history], color="tab:purple", label="head accuracy")
    right.set(xlabel="epoch", title="validation")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _prepare_run_dir(run_dir: Path, recipe: Recipe, resume: bool, force: bool) -> None:
    saved = run_dir / "recipe.yaml"
    has_run = (run_dir / "checkpoint.pt").exists() or (run_dir / "student.pt").exists()
    if has_run and not (resume or force):
        raise EdgekdError(f"{run_dir} already holds a run: pass --resume to continue it or --force to start over")
    if resume and has_run and saved.is_file() and load_run_recipe(run_dir).digest() != recipe.digest():
        raise EdgekdError(f"{run_dir}: the recipe differs from the one this run started with; cannot --resume")
    if force and not resume:
        for name in ("checkpoint.pt", "student.pt", "metrics.json", "history.jsonl"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def build_cache(recipe: Recipe, strict: bool = False, on_progress=None):
    """Teacher inference alone: fill the teacher-embedding cache for the recipe's data."""
    teacher = build_teacher(recipe.teacher)
    if teacher is None:
        raise EdgekdError(f"{recipe.source}: teacher 'none' has no embeddings to cache")
    data = load_domain_data(recipe, teacher.sample_rate or recipe.student.sample_rate, strict)
    return teacher_embeddings(teacher, data.windows, local_device(recipe.train.device), on_progress=on_progress)


def distill(recipe: Recipe, run_dir: Path, resume: bool = False, force: bool = False, strict: bool = False,
            hooks: Hooks | None = None) -> DistillResult:
    rank = init_from_environment()  # under torchrun: join the process group; rank 0 writes the run
    leader = rank == 0
    hooks = hooks if hooks and leader else Hooks()
    started = time.perf_counter()
    if leader:
        _prepare_run_dir(run_dir, recipe, resume, force)
    barrier()
    if recipe.train.num_threads:
        torch.set_num_threads(recipe.train.num_threads)
    torch.manual_seed(recipe.seed)
    device = local_device(recipe.train.device)

    teacher = build_teacher(recipe.teacher)
    hooks.stage("loading and windowing domain data")
    data = load_domain_data(recipe, (teacher and teacher.sample_rate) or recipe.student.sample_rate, strict)
    if data.skipped:
        hooks.stage(f"skipped {len(data.skipped)} unusable audio file(s), listed in metrics.json "
                    f"(first: {data.skipped[0]['path']}: {data.skipped[0]['reason']})")
    windows = data.windows
    train, val = windows.split_index("train"), windows.split_index("val")

    teacher_raw = targets = reduction = cached = teacher_facts = None
    dim = recipe.reduction.dim
    if teacher is not None:
        hooks.stage("teacher inference")
        cached = teacher_embeddings(teacher, windows, device, on_progress=hooks.teacher_progress)
        if cached.directory is not None:
            hooks.stage(f"reused cached teacher embeddings from {cached.directory}" if cached.hit else
                        f"cached teacher embeddings in {cached.directory} ({cached.computed} computed, "
                        f"{cached.reused} reused)")
        teacher_facts = _teacher_profile(teacher, cached.directory, recipe.window.seconds) if leader else None
        loudness = 20 * np.log10(np.sqrt((windows.audio[train] ** 2).mean(1)) + 1e-10)  # dB RMS, for `loudness`
        groups = [windows.groups[i] for i in train] if windows.groups else None
        reduction = fit_reduction(recipe.reduction, cached.embeddings[train], recipe.seed, groups, loudness)
        if leader:
            reduction.save(run_dir / "reduction.npz")
        teacher_raw, targets, dim = cached.embeddings, reduction.transform(cached.embeddings), reduction.dim

    torch.manual_seed(recipe.seed)
    student = build_student(recipe.student, dim)
    if recipe.methods.enabled():
        hooks.stage(f"methods: {', '.join(recipe.methods.enabled())} (preparing supervision)")
    logmel = logmel_features(student, data.student_audio)
    supervision = prepare_supervision(recipe, windows.labels, windows.clip_ids, train, teacher_raw, targets, logmel)
    model = build_distillation_model(recipe, student, supervision, lambda: build_student(recipe.student, dim))
    student_facts = {}
    if leader:  # exporting to measure is the leader's job; workers go straight to training
        student_facts = size_profile(model.deployable(), torch.from_numpy(data.student_audio[:1]))
        hooks.stage(f"student {recipe.student.name}: {student_facts['params']:,} parameters, "
                    f"{student_facts['storage_bytes']:,} B FP32 storage, {student_facts['activation_bytes']:,} B "
                    "activation memory (as `edgekd profile` will measure the export)")
    hooks.stage("training the student")
    log_path = run_dir / "history.jsonl"
    if leader and not resume:
        log_path.write_text("")

    def on_epoch(log: EpochLog) -> None:
        if leader:  # one JSON line per epoch as it ends; rewritten whole from the checkpoint's history at the end
            with open(log_path, "a") as handle:
                handle.write(json.dumps(asdict(log)) + "\n")
        hooks.epoch(log)

    trained = time.perf_counter()
    history = train_student(model, data.student_audio, supervision.rows, supervision.train, val, recipe.train,
                            recipe.seed, run_dir / "checkpoint.pt", resume=resume, on_step=hooks.step,
                            on_epoch=on_epoch)
    training_seconds = time.perf_counter() - trained
    if not leader:
        return DistillResult(run_dir, {}, history)
    model.cpu().eval()
    deployed = model.deployable()
    torch.save({"state_dict": deployed.state_dict(), "embedding_dim": dim,
                "student": recipe.student.model_dump(mode="json"),
                "head": model.head.state_dict() if model.head is not None else None}, run_dir / "student.pt")
    with open(log_path, "w") as handle:
        handle.writelines(json.dumps(asdict(h)) + "\n" for h in history)
    _plot_history(history, run_dir / "training_curves.png")

    hooks.stage("evaluating")
    metrics = _evaluate(recipe, data, teacher_raw, reduction, targets, model, supervision, teacher_facts,
                        student_facts, logmel)
    if cached is not None:
        metrics["teacher"]["cache"] = {"computed": cached.computed, "reused": cached.reused,
                                       "directory": str(cached.directory) if cached.directory else None}
    metrics["skipped_audio"] = data.skipped
    metrics["methods"] = supervision.report
    best = max(history, key=EpochLog.score)
    metrics["training"] = {"epochs": len(history), "best_epoch": best.epoch, "best_val_cosine": best.val_cosine,
                           "best_val_accuracy": best.val_accuracy, "device": str(device),
                           "training_seconds": round(training_seconds, 1),
                           "seconds": round(time.perf_counter() - started, 1)}
    _write_json(run_dir / "metrics.json", metrics)
    return DistillResult(run_dir, metrics, history)


def distill_once(recipe: Recipe, run_dir: Path) -> dict:
    """The metrics of the run in `run_dir` if it finished with this very recipe, else of a fresh distillation there
    (for searches and benchmarks that run many recipes and should continue where an interruption left them)."""
    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file() and (run_dir / "recipe.yaml").is_file() and \
            load_run_recipe(run_dir).digest() == recipe.digest():
        return json.loads(metrics_path.read_text())
    return distill(recipe, run_dir, force=True).metrics


def _evaluate(recipe: Recipe, data: DomainData, teacher_raw: np.ndarray | None, reduction: Reduction | None,
              targets: np.ndarray | None, model: DistillationModel, supervision: Supervision,
              teacher_facts: dict | None, student_facts: dict, logmel: np.ndarray) -> dict:
    windows = data.windows
    train, val, test = (windows.split_index(s) for s in ("train", "val", "test"))
    # the deployed network alone: evaluation runs no peer, attention teacher or training-only branch
    embeddings = predict(model.deployable(), torch.from_numpy(data.student_audio))
    student_out = embeddings.numpy()
    student_facts = student_facts | {"macs_per_window": student_facts["macs"], "dim": int(student_out.shape[1])}
    metrics = {
        "edgekd_version": __version__,
        "recipe": recipe.name,
        "recipe_digest": recipe.digest(),
        "seed": recipe.seed,
        "windows": {"train": len(train), "val": len(val), "test": len(test)},
        "teacher": {"name": recipe.teacher.name, **(teacher_facts or {})},
        "student": {"name": recipe.student.name, **student_facts},
    }
    if teacher_raw is not None:
        metrics["teacher"]["dim"] = int(teacher_raw.shape[1])
        metrics["reduction"] = {"method": reduction.method, "dim": reduction.dim, "sample": recipe.reduction.sample,
                                "explained_variance": None if np.isnan(reduction.explained_variance)
                                else reduction.explained_variance}
        metrics["fidelity"] = {split: fidelity(student_out[rows], targets[rows]) | {
            "cka": linear_cka(student_out[rows], targets[rows])} for split, rows in (("val", val), ("test", test))}
    if teacher_facts:
        metrics["ratios"] = {
            "storage": teacher_facts["storage_bytes"] / student_facts["storage_bytes"],
            "activation": teacher_facts["activation_bytes"] / student_facts["activation_bytes"],
        }
    if model.head is not None:
        with torch.no_grad():
            logits = model.head(embeddings[test]).numpy()
        metrics["head"] = head_fidelity(logits, windows.labels[test],
                                        None if supervision.teacher_log_probabilities is None
                                        else supervision.teacher_log_probabilities[test])
    if windows.labels is not None:
        labels = windows.labels

        def probe(features: np.ndarray) -> float:
            return probe_accuracy(features[train], labels[train], features[test], labels[test], recipe.probe,
                                  recipe.seed)

        metrics["probe_metric"] = "micro_auprc" if labels.ndim == 2 else "accuracy"
        metrics["probe"] = {"student": probe(student_out), "logmel_baseline": probe(logmel_statistics(logmel))}
        if teacher_raw is not None:
            metrics["probe"] |= {"teacher": probe(teacher_raw), "teacher_reduced": probe(targets)}
    return metrics


@torch.no_grad()
def logmel_features(student: torch.nn.Module, audio: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The student front-end's log-mel of every window: input of the log-mel baseline and of methods that need a
    cheap view of the audio (MiniPLM's reference model, ReffAKD's autoencoder)."""
    return torch.cat([student.frontend(torch.from_numpy(audio[i : i + batch_size]))
                      for i in range(0, len(audio), batch_size)]).numpy()
