"""Distillation methods of the research line, as recipe options (`methods:`), on top of plain SEA.

`prepare_supervision` turns the cache, labels and recipe into per-window training rows (targets, labels, soft
targets, teacher trust) and the training windows; `build_distillation_model` wraps the student with what the methods
add. Both run before training and are pure functions of the recipe, the data and the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgekd.config import Recipe
from edgekd.errors import EdgekdError
from edgekd.losses import build_loss
from edgekd.methods.config import MethodsConfig
from edgekd.methods.model import DistillationModel
from edgekd.methods.retrieval import choose_knowledge_base
from edgekd.methods.supervision import (
    autoencoder_soft_labels,
    difference_scores,
    out_of_fold_log_probabilities,
    revise_labels,
    select_top,
    teacher_reliability,
)

# Methods that need one class label per window.
LABELLED = ("kd", "selection", "label_revision", "teacher_free")


@dataclass
class Supervision:
    rows: dict[str, np.ndarray]  # per window: target, label, soft (log-probabilities), trust
    train: np.ndarray  # training windows after any data selection
    num_classes: int | None
    teacher_log_probabilities: np.ndarray | None  # the teacher head's, for fidelity reporting
    report: dict = field(default_factory=dict)  # what the methods did, for metrics.json


def prepare_supervision(recipe: Recipe, labels: np.ndarray | None, clip_ids: list[str], train: np.ndarray,
                        teacher_raw: np.ndarray | None, targets: np.ndarray | None,
                        logmel: np.ndarray) -> Supervision:
    methods: MethodsConfig = recipe.methods
    needs_labels = [name for name in LABELLED if getattr(methods, name) is not None]
    if needs_labels and (labels is None or labels.ndim != 1):
        raise EdgekdError(f"{recipe.source}: methods.{needs_labels[0]} needs one class label per clip; the data "
                          f"'{recipe.data.name}' has {'none' if labels is None else 'multi-label tags'}")
    clips = np.asarray(clip_ids)
    rows: dict[str, np.ndarray] = {}
    report: dict = {"enabled": methods.enabled()}
    if targets is not None:
        rows["target"] = targets.astype(np.float32)
    num_classes = int(labels.max()) + 1 if labels is not None and labels.ndim == 1 else None
    teacher_log_p = None
    if teacher_raw is not None and num_classes is not None and (methods.kd or methods.selection or
                                                                 methods.difference_sampling):
        folds = methods.kd.teacher_head_folds if methods.kd else 5
        teacher_log_p = out_of_fold_log_probabilities(teacher_raw, labels, train, clips, folds, recipe.seed,
                                                      num_classes)
        report["teacher_head_train_accuracy_out_of_fold"] = float((teacher_log_p[train].argmax(1) ==
                                                                   labels[train]).mean())
    if methods.kd is not None:
        rows["label"] = labels.astype(np.int64)
        if methods.teacher_free is not None:
            soft, mse = autoencoder_soft_labels(logmel, labels, train, num_classes, methods.teacher_free, recipe.seed)
            rows["soft"] = soft
            report["teacher_free"] = {"autoencoder_reconstruction_mse": mse}
        elif teacher_log_p is not None:
            soft = teacher_log_p
            if methods.label_revision is not None:
                soft = revise_labels(teacher_log_p, labels, methods.label_revision)
                report["label_revision"] = {"revised_train_windows": int((soft[train] != teacher_log_p[train])
                                                                         .any(1).sum())}
            rows["soft"] = soft
    if methods.selection is not None:
        reliable = select_top(teacher_reliability(teacher_log_p, labels), train, methods.selection.keep, None)
        trust = np.zeros(len(labels), dtype=np.float32)
        trust[reliable] = 1.0
        trust[np.setdiff1d(np.arange(len(labels)), train)] = 1.0  # validation is always scored against the teacher
        rows["trust"] = trust
        report["selection"] = {"teacher_supervised_train_windows": int(len(reliable)), "of": int(len(train))}
        if methods.kd is None:  # no labels to fall back on: unselected windows leave the training set
            train = reliable
    if methods.difference_sampling is not None:
        scores = difference_scores(teacher_raw, teacher_log_p, logmel_statistics(logmel),
                                   labels if num_classes is not None else None, train, clips, recipe.seed,
                                   num_classes)
        kept = select_top(scores, train, methods.difference_sampling.keep,
                          labels if num_classes is not None else None)
        dropped = np.setdiff1d(train, kept)
        report["difference_sampling"] = {"kept_train_windows": int(len(kept)), "of": int(len(train)),
                                         "mean_score_kept": float(scores[kept].mean()),
                                         "mean_score_dropped": float(scores[dropped].mean()) if len(dropped) else None}
        train = kept
    return Supervision(rows, train, num_classes, teacher_log_p, report)


def logmel_statistics(logmel: np.ndarray) -> np.ndarray:
    """Mean and std of each log-mel band: the trivial baseline any embedding must beat, and MiniPLM's small
    reference model's input."""
    return np.concatenate([logmel.mean(-1), logmel.std(-1)], axis=1)


def build_distillation_model(recipe: Recipe, student: torch.nn.Module, supervision: Supervision,
                             build_peer) -> DistillationModel:
    """The student plus what the methods add. `build_peer()` makes a fresh student of the same family (seeded
    differently) for mutual learning."""
    methods: MethodsConfig = recipe.methods
    peer = None
    if methods.mutual is not None:
        torch.manual_seed(recipe.seed + 1)
        peer = build_peer()
    knowledge_base = None
    if methods.retrieval is not None:
        targets = supervision.rows["target"]
        chosen = choose_knowledge_base(targets[supervision.train], methods.retrieval.size, recipe.seed)
        knowledge_base = torch.from_numpy(targets[supervision.train][chosen])
    attention_teacher = None
    if methods.attention is not None:
        attention_teacher = load_attention_teacher(Path(methods.attention.teacher_run), recipe)
    return DistillationModel(student, build_loss(recipe.loss), methods, supervision.num_classes, peer,
                             knowledge_base, attention_teacher)


def load_attention_teacher(run_dir: Path, recipe: Recipe) -> torch.nn.Module:
    from edgekd.distill import load_student

    teacher, teacher_recipe = load_student(run_dir)
    if teacher_recipe.student.name != "transformer" or recipe.student.name != "transformer":
        raise EdgekdError(f"{recipe.source}: methods.attention aligns transformer attention maps; the student is "
                          f"'{recipe.student.name}' and {run_dir}'s is '{teacher_recipe.student.name}'")
    mismatched = [key for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "patch_frames")
                  if getattr(teacher_recipe.student, key) != getattr(recipe.student, key)]
    if mismatched:
        raise EdgekdError(f"{recipe.source}: methods.attention: the student's '{mismatched[0]}' differs from the "
                          f"attention teacher's in {run_dir}; both must see the same tokens")
    return teacher
