"""Difference sampling (MiniPLM, Gu et al. 2025): once, before training, score each training window by how much
harder a small reference model finds it than the teacher (reference loss − teacher loss, out of fold) and keep the
highest-scoring fraction within each class, so the set stays diverse."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edgekd.distillation import Method
from edgekd.schema import StrictModel
from edgekd.supervision import Supervision, out_of_fold_log_probabilities, select_top


class DifferenceSamplingConfig(StrictModel):
    keep: float = Field(0.7, gt=0, lt=1, description="fraction of training windows kept")


def difference_scores(supervision: Supervision, reference_features: np.ndarray) -> np.ndarray:
    """MiniPLM's difference score per training window: the small reference model's loss minus the teacher's.

    With labels, both are out-of-fold cross-entropies of a logistic head (the teacher's head, and one on the
    reference's log-mel statistics). Without labels, the reference is a ridge regression from log-mel statistics to
    the teacher embedding: its out-of-fold error is what the teacher knows that a small model does not."""
    teacher, train, clips, seed = supervision.teacher, supervision.train, supervision.clips, supervision.seed
    scores = np.zeros(len(teacher), dtype=np.float64)
    if supervision.num_classes is not None:
        true = supervision.labels[train]
        teacher_loss = -supervision.teacher_head()
        reference_loss = -out_of_fold_log_probabilities(reference_features, supervision.labels, train, clips, 5,
                                                        seed, supervision.num_classes)
        scores[train] = reference_loss[train, true] - teacher_loss[train, true]
        return scores
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    for fit_part, score_part in GroupKFold(5).split(train, groups=clips[train]):
        model = Ridge(alpha=1.0).fit(reference_features[train[fit_part]], teacher[train[fit_part]])
        error = ((model.predict(reference_features[train[score_part]]) - teacher[train[score_part]]) ** 2).mean(1)
        scores[train[score_part]] = error
    return scores


class DifferenceSampling(Method):
    name = "difference_sampling"
    config_model = DifferenceSamplingConfig
    order = 40
    needs_teacher = True

    def prepare(self, supervision: Supervision) -> None:
        train = supervision.train
        scores = difference_scores(supervision, supervision.logmel.statistics())
        classes = supervision.labels if supervision.num_classes is not None else None
        kept = select_top(scores, train, self.config.keep, classes)
        dropped = np.setdiff1d(train, kept)
        supervision.report["difference_sampling"] = {
            "kept_train_windows": int(len(kept)), "of": int(len(train)), "mean_score_kept": float(scores[kept].mean()),
            "mean_score_dropped": float(scores[dropped].mean()) if len(dropped) else None}
        supervision.train = kept


METHOD = DifferenceSampling
