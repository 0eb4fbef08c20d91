"""Data selection by teacher reliability (Lan et al. 2024): only the examples on which the teacher is most reliable
(its out-of-fold probability of the true class) get teacher supervision; the rest learn from labels alone (with a
head) or are left out."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgekd.distillation import Method
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision, select_top


class SelectionConfig(StrictModel):
    keep: float = Field(0.8, gt=0, le=1, description="fraction of training windows that keep teacher supervision")


def teacher_reliability(log_probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The teacher's (out-of-fold) probability of the true class."""
    return np.exp(log_probabilities[np.arange(len(labels)), labels])


class Selection(Method):
    name = "selection"
    config_model = SelectionConfig
    order = 30
    needs_teacher = True
    needs_labels = True

    def prepare(self, supervision: Supervision) -> None:
        labels, train = supervision.labels, supervision.train
        reliable = select_top(teacher_reliability(supervision.teacher_head(), labels), train, self.config.keep, None)
        trust = np.zeros(len(labels), dtype=np.float32)
        trust[reliable] = 1.0
        trust[np.setdiff1d(np.arange(len(labels)), train)] = 1.0  # validation is always scored against the teacher
        supervision.rows["trust"] = trust
        supervision.report["selection"] = {"teacher_supervised_train_windows": int(len(reliable)),
                                           "of": int(len(train))}
        if "label" not in supervision.rows:  # no labels to fall back on: unselected windows leave the training set
            supervision.train = reliable


METHOD = Selection
