"""What the distillation methods prepare before training, from the teacher cache, the labels and the log-mel: per-
window rows for the trainer (`target`, `label`, `soft`, `trust`), the training windows, and a report of what they
did. Every step is a pure function of those inputs and the seed."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from edgekd.metrics import logmel_statistics
from edgekd.reduction import Rows


class LogMel:
    """The student front-end's log-mel of windows, computed batch by batch when asked (all windows' log-mels would
    not fit in memory for hours of audio): input of the log-mel baseline and of methods that need a cheap view of
    the audio (MiniPLM's reference model, ReffAKD's autoencoder)."""

    def __init__(self, frontend: torch.nn.Module, audio, batch_size: int = 256):
        self.frontend, self.audio, self.batch_size = frontend, audio, batch_size

    def __len__(self) -> int:
        return len(self.audio)

    @torch.no_grad()
    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """(rows, mels, frames) float32."""
        return self.frontend(torch.from_numpy(self.audio[rows])).numpy()

    def batches(self, rows: np.ndarray):
        for start in range(0, len(rows), self.batch_size):
            yield self[rows[start : start + self.batch_size]]

    def statistics(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Mean and std of each band for `rows` (every window when None)."""
        rows = np.arange(len(self)) if rows is None else rows
        parts = [logmel_statistics(batch) for batch in self.batches(rows)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


@dataclass
class Supervision:
    seed: int
    labels: np.ndarray | None  # class index per window, (windows, tags) for multi-label, None when unlabelled
    clips: np.ndarray  # clip of each window: folds and selections never split a clip
    train: np.ndarray  # training windows (methods may narrow them)
    teacher: Rows | None  # raw teacher embeddings (cache rows, read when indexed); None without a teacher
    logmel: LogMel  # the student front-end's log-mel of any window, computed when asked
    rows: dict[str, np.ndarray] = field(default_factory=dict)  # per window: what the trainer feeds the objective
    report: dict = field(default_factory=dict)  # for metrics.json
    teacher_log_probabilities: np.ndarray | None = None  # the teacher head's, once a method asked for it

    @property
    def num_classes(self) -> int | None:
        single_label = self.labels is not None and self.labels.ndim == 1
        return int(self.labels.max()) + 1 if single_label else None

    def teacher_head(self, folds: int = 5) -> np.ndarray:
        """Log class probabilities of a logistic head on the raw teacher embedding, out of fold on the training
        windows; fitted once, by the first method that asks."""
        if self.teacher_log_probabilities is None:
            self.teacher_log_probabilities = out_of_fold_log_probabilities(
                self.teacher, self.labels, self.train, self.clips, folds, self.seed, self.num_classes)
            train = self.train
            self.report["teacher_head_train_accuracy_out_of_fold"] = float(
                (self.teacher_log_probabilities[train].argmax(1) == self.labels[train]).mean())
        return self.teacher_log_probabilities


def out_of_fold_log_probabilities(features: np.ndarray, labels: np.ndarray, train: np.ndarray, clips: np.ndarray,
                                  folds: int, seed: int, num_classes: int) -> np.ndarray:
    """Log class probabilities of a logistic-regression head on `features`, for every window: training windows are
    scored by heads fitted on the other folds (a head scored on its own rows would agree with nearly every label),
    folds split by clip so no clip is on both sides; the other windows by a head fitted on all training windows."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def fit(rows: np.ndarray):
        head = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return head.fit(features[rows], labels[rows])

    def log_probabilities(head, rows: np.ndarray) -> np.ndarray:
        out = np.full((len(rows), num_classes), np.log(1e-8), dtype=np.float32)
        out[:, head[-1].classes_] = np.log(np.clip(head.predict_proba(features[rows]), 1e-8, None))
        return out

    result = log_probabilities(fit(train), np.arange(len(features)))
    counts = np.bincount(labels[train])
    folds = max(2, min(folds, counts[counts > 0].min()))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    for fit_part, score_part in splitter.split(features[train], labels[train], clips[train]):
        result[train[score_part]] = log_probabilities(fit(train[fit_part]), train[score_part])
    return result


def select_top(scores: np.ndarray, rows: np.ndarray, keep: float, groups: np.ndarray | None) -> np.ndarray:
    """The highest-scoring `keep` fraction of `rows`, taken within each group (class) so every group stays."""
    chosen = []
    for group in np.unique(groups[rows]) if groups is not None else [None]:
        members = rows if group is None else rows[groups[rows] == group]
        count = max(1, int(round(keep * len(members))))
        chosen.append(members[np.argsort(-scores[members], kind="stable")[:count]])
    return np.sort(np.concatenate(chosen))
