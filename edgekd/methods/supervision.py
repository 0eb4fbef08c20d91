"""Per-window supervision computed once, before training, from the cached teacher embeddings and the labels:
the teacher's soft labels (and their revision), teacher reliability (selection), difference sampling (MiniPLM) and
teacher-free autoencoder soft labels (ReffAKD). All of it is a pure function of the cache, the labels and the seed."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from edgekd.methods.config import LabelRevisionConfig, TeacherFreeConfig


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


def revise_labels(log_probabilities: np.ndarray, labels: np.ndarray, config: LabelRevisionConfig) -> np.ndarray:
    """Label revision: where the teacher's top class is wrong, p' = β·p + (1−β)·onehot with β the largest value up to
    `beta` that puts the true class first (β < 1 / (1 + p_max − p_true)); right predictions are kept."""
    p = np.exp(log_probabilities)
    rows = np.arange(len(p))
    wrong = p.argmax(1) != labels
    p_true, p_max = p[rows, labels], p.max(1)
    beta = np.minimum(config.beta, 0.99 / (1 + p_max - p_true))
    revised = beta[:, None] * p
    revised[rows, labels] += 1 - beta
    return np.where(wrong[:, None], np.log(np.clip(revised, 1e-8, None)), log_probabilities).astype(np.float32)


def teacher_reliability(log_probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The teacher's (out-of-fold) probability of the true class."""
    return np.exp(log_probabilities[np.arange(len(labels)), labels])


def select_top(scores: np.ndarray, rows: np.ndarray, keep: float, groups: np.ndarray | None) -> np.ndarray:
    """The highest-scoring `keep` fraction of `rows`, taken within each group (class) so every group stays."""
    chosen = []
    for group in np.unique(groups[rows]) if groups is not None else [None]:
        members = rows if group is None else rows[groups[rows] == group]
        count = max(1, int(round(keep * len(members))))
        chosen.append(members[np.argsort(-scores[members], kind="stable")[:count]])
    return np.sort(np.concatenate(chosen))


def difference_scores(teacher: np.ndarray, teacher_log_probabilities: np.ndarray | None,
                      reference_features: np.ndarray, labels: np.ndarray | None, train: np.ndarray, clips: np.ndarray,
                      seed: int, num_classes: int | None) -> np.ndarray:
    """MiniPLM's difference score per training window: the small reference model's loss minus the teacher's.

    With labels, both are out-of-fold cross-entropies of a logistic head (the teacher's head, given, and one on the
    reference's log-mel statistics). Without labels, the reference is a ridge regression from log-mel statistics to
    the teacher embedding: its out-of-fold error is what the teacher knows that a small model does not."""
    scores = np.zeros(len(teacher), dtype=np.float64)
    if labels is not None:
        true = labels[train]
        teacher_loss = -teacher_log_probabilities
        reference_loss = -out_of_fold_log_probabilities(reference_features, labels, train, clips, 5, seed,
                                                        num_classes)
        scores[train] = reference_loss[train, true] - teacher_loss[train, true]
        return scores
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GroupKFold

    for fit_part, score_part in GroupKFold(5).split(train, groups=clips[train]):
        model = Ridge(alpha=1.0).fit(reference_features[train[fit_part]], teacher[train[fit_part]])
        error = ((model.predict(reference_features[train[score_part]]) - teacher[train[score_part]]) ** 2).mean(1)
        scores[train[score_part]] = error
    return scores


class _AutoEncoder(nn.Module):
    def __init__(self, latent: int):
        super().__init__()
        self.encode = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                    nn.Conv2d(16, latent, 3, 2, 1))
        self.decode = nn.Sequential(nn.ConvTranspose2d(latent, 16, 4, 2, 1), nn.ReLU(),
                                    nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encode(x)
        return code.mean(dim=(2, 3)), self.decode(code)


def autoencoder_soft_labels(logmel: np.ndarray, labels: np.ndarray, train: np.ndarray, num_classes: int,
                            config: TeacherFreeConfig, seed: int) -> tuple[np.ndarray, float]:
    """ReffAKD: train a compact autoencoder on the training log-mels, average its pooled codes per class, and give
    each window the soft label of its class: softmax over classes of the cosine similarity between class codes.
    Returns (log soft labels per window, final reconstruction MSE)."""
    torch.manual_seed(seed)
    # pad time and mel to multiples of 8 so three stride-2 convs and their transposes give back the input shape
    x = torch.from_numpy(logmel)[:, None]
    x = (x - x[torch.from_numpy(train)].mean()) / (x[torch.from_numpy(train)].std() + 1e-6)
    pad_mel, pad_time = -x.shape[2] % 8, -x.shape[3] % 8
    x = nn.functional.pad(x, (0, pad_time, 0, pad_mel))
    model = _AutoEncoder(config.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    mse = float("nan")
    for _ in range(config.epochs):
        order = train[torch.randperm(len(train), generator=generator).numpy()]
        for start in range(0, len(order), 32):
            batch = x[torch.from_numpy(order[start : start + 32])]
            loss = nn.functional.mse_loss(model(batch)[1], batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            mse = loss.item()
    with torch.no_grad():
        codes = model(x[torch.from_numpy(train)])[0]
    centres = torch.stack([codes[torch.from_numpy(labels[train] == c)].mean(0) if (labels[train] == c).any()
                           else torch.zeros(codes.shape[1]) for c in range(num_classes)])
    similarity = nn.functional.normalize(centres, dim=1) @ nn.functional.normalize(centres, dim=1).T
    class_soft = torch.log_softmax(similarity / config.temperature, 1).numpy().astype(np.float32)
    return class_soft[labels], mse
