"""Evaluation protocols: how `edgekd evaluate` trains and scores probes on frozen embeddings, so that its figures can
be set beside the papers'. Each is one entry of PROTOCOLS; the README describes each with its source.

- window: every window is an example, scored per window (edgekd's own, the finest-grained).
- hear: HEAR 2021's scene protocol (Turian et al., PMLR 176, 2022; hear-eval-kit): one embedding per clip, the mean
  of its windows' embeddings (what HEAR's baselines return as a scene embedding), probes on clips.
- sea: the L3-Net / OpenL3 / SEA downstream protocol (Cramer et al., ICASSP 2019; Srivastava et al., ICASSP 2021;
  the l3embedding repository's classifier/train.py): 1 s windows every 0.1 s, an MLP (512 and 128 ReLU units, L2
  1e-5, Adam at 1e-4, batches of 64, at most 100 epochs, early stopping after 20) trained on every window with its
  clip's label, and a clip's class the argmax of its windows' mean class probabilities.

Every protocol also fits a logistic regression (the recipe's `probe:` settings) scored the same way, and runs on the
data's official folds when it has them (each fold in turn the test set), giving mean ± std over folds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the CLI imports ProtocolName: numpy and the recipe schema load only when a probe runs
    import numpy as np

    from edgekd.configs import ProbeConfig

ProtocolName = Literal["window", "hear", "sea"]


@dataclass(frozen=True)
class Classifier:
    """One probe on standardised embeddings: logistic regression when `hidden` is empty, else an MLP (several MLPs
    in a protocol form a grid, the best chosen on validation data)."""

    hidden: tuple[int, ...] = ()
    alpha: float = 1e-4  # L2 penalty of the MLP
    learning_rate: float = 1e-3
    batch_size: int | Literal["auto"] = "auto"
    max_iter: int = 300
    patience: int = 10  # epochs without improvement on held-out training data before stopping

    def fit(self, x: np.ndarray, y: np.ndarray, probe: ProbeConfig, seed: int):
        """Fitted on (examples, features) and class indices, or (examples, tags) 0/1 (one-vs-rest)."""
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from edgekd.metrics import fit_probe

        if not self.hidden:
            return fit_probe(x, y, probe, seed)
        model = MLPClassifier(hidden_layer_sizes=self.hidden, alpha=self.alpha, learning_rate_init=self.learning_rate,
                              batch_size=self.batch_size, max_iter=self.max_iter, n_iter_no_change=self.patience,
                              early_stopping=len(x) >= 50, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings of small probes
            return make_pipeline(StandardScaler(), model).fit(x, y)


@dataclass(frozen=True)
class Protocol:
    name: str
    summary: str  # one line, with its source
    hop_seconds: float | None  # windows re-cut at this hop for the protocol (None: the run's or the data's own)
    pool: bool  # the probe sees one example per clip: the mean of its windows' embeddings
    vote: bool  # a clip's scores are the mean of its windows' probabilities
    mlp_grid: tuple[Classifier, ...]  # the "mlp" score is the best of these on validation data


LOGREG = Classifier()
HEAR_GRID = (LOGREG, Classifier((256,)), Classifier((256, 256)))  # HEAR-style: 0, 1 or 2 hidden layers
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("window", "every window an example (edgekd)", None, pool=False, vote=False, mlp_grid=HEAR_GRID),
    Protocol("hear", "clip = mean of its window embeddings, probes on clips (HEAR 2021)", None, pool=True,
             vote=False, mlp_grid=HEAR_GRID),
    Protocol("sea", "1 s windows every 0.1 s, MLP 512-128 on windows, clip = mean of their probabilities "
             "(L3-Net, OpenL3, SEA)", 0.1, pool=False, vote=True,
             mlp_grid=(Classifier((512, 128), alpha=1e-5, learning_rate=1e-4, batch_size=64, max_iter=100,
                                  patience=20),)),
)}


def clip_means(values: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clips present in `clip` (sorted) and the mean of `values`' rows over each clip's windows."""
    import numpy as np
    from scipy.sparse import csr_matrix

    clips, inverse = np.unique(clip, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(clips))
    membership = csr_matrix((1.0 / counts[inverse], (inverse, np.arange(len(clip)))), shape=(len(clips), len(clip)))
    return clips, np.asarray(membership @ values.astype(np.float64), dtype=np.float64)


def probabilities(model, x: np.ndarray, classes: int) -> np.ndarray:
    """(examples, classes or tags) probabilities in label order, whatever classes the training data happened to
    hold."""
    import numpy as np

    predicted = model.predict_proba(x)
    if predicted.shape[1] == classes:
        return predicted
    full = np.zeros((len(x), classes))
    full[:, model.classes_] = predicted
    return full


def fit_and_predict(classifier: Classifier, train_x: np.ndarray, train_y: np.ndarray, predict: list[np.ndarray],
                    classes: int, probe: ProbeConfig, seed: int) -> list[np.ndarray]:
    """One probe job: fitted on the training examples, its probabilities on each array of `predict`."""
    model = classifier.fit(train_x, train_y, probe, seed)
    return [probabilities(model, x, classes) for x in predict]


def scores(probabilities: np.ndarray, labels: np.ndarray, prefix: str) -> dict[str, float]:
    """Accuracy and macro-F1 for classes; micro and macro AUPRC (SONYC-UST's metrics) for (examples, tags) 0/1."""
    from sklearn.metrics import average_precision_score, f1_score

    if labels.ndim == 2:
        return {f"{prefix}_micro_auprc": float(average_precision_score(labels, probabilities, average="micro")),
                f"{prefix}_macro_auprc": float(average_precision_score(labels, probabilities, average="macro"))}
    predicted = probabilities.argmax(1)
    return {f"{prefix}_accuracy": float((predicted == labels).mean()),
            f"{prefix}_macro_f1": float(f1_score(labels, predicted, average="macro"))}


def headline(found: dict[str, float]) -> float:
    """The score a grid is chosen on: accuracy, or micro AUPRC for tags."""
    return next(value for key, value in found.items() if key.endswith(("_accuracy", "_micro_auprc")))
