"""Honest evaluation: fidelity of student to reduced teacher, and a downstream linear probe on frozen embeddings."""

from __future__ import annotations

import warnings

import numpy as np

from edgekd.config import ProbeConfig
from edgekd.export import cosine_rows


def fidelity(student: np.ndarray, target: np.ndarray) -> dict[str, float]:
    cos = cosine_rows(student, target)
    residual = ((student - target) ** 2).sum()
    spread = ((target - target.mean(0)) ** 2).sum()
    return {
        "cosine": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "mse": float(((student - target) ** 2).mean()),
        "r2": float(1 - residual / spread) if spread > 0 else float("nan"),
    }


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, config: ProbeConfig, seed: int):
    """A standardised logistic-regression probe on frozen embeddings (one-vs-rest for multi-label (clips × tags))."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=seed)
    probe = make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if train_y.ndim == 2 else classifier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return probe.fit(train_x, train_y)


def score_probe(probe, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy for class labels; micro-averaged AUPRC (SONYC-UST's metric) for multi-label 0/1 labels."""
    from sklearn.metrics import average_precision_score

    if y.ndim == 2:
        return float(average_precision_score(y, probe.predict_proba(x), average="micro"))
    return float(probe.score(x, y))


def probe_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                   config: ProbeConfig, seed: int) -> float:
    return score_probe(fit_probe(train_x, train_y, config, seed), test_x, test_y)
