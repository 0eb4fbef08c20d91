"""Honest measures: fidelity of student to reduced teacher (cosine, R², linear CKA), downstream probes on frozen
embeddings, and the log-mel statistics baseline every embedding must beat."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from edgekd.configs import ProbeConfig


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def logmel_statistics(logmel: np.ndarray) -> np.ndarray:
    """Mean and std of each log-mel band: the trivial baseline any embedding must beat, and MiniPLM's small
    reference model's input."""
    return np.concatenate([logmel.mean(-1), logmel.std(-1)], axis=1)


@dataclass
class Fidelity:
    """How closely student embeddings follow the (reduced) teacher's on the same windows."""

    cosine: float
    cosine_min: float
    mse: float
    r2: float
    cka: float


def fidelity(student: np.ndarray, target: np.ndarray) -> Fidelity:
    cos = cosine_rows(student, target)
    residual = ((student - target) ** 2).sum()
    spread = ((target - target.mean(0)) ** 2).sum()
    return Fidelity(cosine=float(cos.mean()), cosine_min=float(cos.min()), mse=float(((student - target) ** 2).mean()),
                    r2=float(1 - residual / spread) if spread > 0 else float("nan"), cka=linear_cka(student, target))


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, config: ProbeConfig, seed: int):
    """A standardised logistic-regression probe on frozen embeddings (one-vs-rest for multi-label (clips × tags))."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    classifier = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=seed)
    probe = make_pipeline(StandardScaler(), OneVsRestClassifier(classifier) if train_y.ndim == 2 else classifier)
    # one thread: with the default two here, L-BFGS ran 7-25x slower on the same iterations (2,400 ESC-10 windows
    # of SEA-64: 1.24 s vs 0.10 s), its OpenMP loss and OpenBLAS contending for the cores
    with warnings.catch_warnings(), threadpool_limits(1):
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


def head_fidelity(student_logits: np.ndarray, labels: np.ndarray, teacher_log_probabilities: np.ndarray | None
                  ) -> dict[str, float]:
    """Generalisation and fidelity of a classification head side by side (Stanton et al. 2021, "Does knowledge
    distillation really work?"): accuracy on the labels, and agreement with the teacher — top-1 agreement and the
    predictive KL(teacher ‖ student) at temperature 1. A student can generalise well while agreeing poorly."""
    student_log_p = student_logits - np.logaddexp.reduce(student_logits, axis=1, keepdims=True)
    out = {"accuracy": float((student_logits.argmax(1) == labels).mean())}
    if teacher_log_probabilities is not None:
        teacher_p = np.exp(teacher_log_probabilities)
        out |= {"teacher_accuracy": float((teacher_log_probabilities.argmax(1) == labels).mean()),
                "top1_agreement": float((student_logits.argmax(1) == teacher_log_probabilities.argmax(1)).mean()),
                "predictive_kl": float((teacher_p * (teacher_log_probabilities - student_log_p)).sum(1).mean())}
    return out


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear centred kernel alignment between two sets of embeddings of the same examples (Kornblith et al. 2019):
    1 when one is an orthogonal transform and scaling of the other, whatever their dimensions."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(y.T @ x) ** 2
    return float(cross / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y) + 1e-12))
