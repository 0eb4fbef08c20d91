"""Label revision (Lan et al. 2024): where the teacher's soft label disagrees with the ground truth, move it toward
the one-hot label just far enough that the true class ranks first."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgekd.distillation import Method
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision


class LabelRevisionConfig(StrictModel):
    beta: float = Field(0.8, gt=0, lt=1, description="most weight the teacher keeps in a revised label")


def revise_labels(log_probabilities: np.ndarray, labels: np.ndarray, beta: float) -> np.ndarray:
    """Where the teacher's top class is wrong, p' = β·p + (1−β)·onehot with β the largest value up to `beta` that
    puts the true class first (β < 1 / (1 + p_max − p_true)); right predictions are kept."""
    p = np.exp(log_probabilities)
    rows = np.arange(len(p))
    wrong = p.argmax(1) != labels
    p_true, p_max = p[rows, labels], p.max(1)
    largest = np.minimum(beta, 0.99 / (1 + p_max - p_true))
    revised = largest[:, None] * p
    revised[rows, labels] += 1 - largest
    return np.where(wrong[:, None], np.log(np.clip(revised, 1e-8, None)), log_probabilities).astype(np.float32)


class LabelRevision(Method):
    name = "label_revision"
    config_model = LabelRevisionConfig
    order = 20
    needs_teacher = True
    needs_labels = True
    requires = {"kd": "revises or replaces soft labels: add a 'kd' section (the head)"}
    excludes = {"teacher_free": "revises a teacher's soft labels; 'teacher_free' replaces them with class soft labels "
                                "that already rank the true class first: use one of them"}

    def prepare(self, supervision: Supervision) -> None:
        teacher = supervision.rows["soft"]
        revised = revise_labels(teacher, supervision.labels, self.config.beta)
        train = supervision.train
        supervision.report["label_revision"] = {"revised_train_windows": int((revised[train] != teacher[train])
                                                                             .any(1).sum())}
        supervision.rows["soft"] = revised


METHOD = LabelRevision
