import numpy as np

from edgekd.config import ProbeConfig
from edgekd.evaluate import downstream_scores, linear_cka
from edgekd.evaluation_run import _fold_splits


def test_linear_cka_is_invariant_to_rotation_and_scale_and_low_for_noise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16))
    rotation, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    assert linear_cka(x, 3.0 * x @ rotation) > 0.9999
    assert linear_cka(x, x[:, :8]) > 0.3  # a projection keeps part of the structure
    assert linear_cka(x, rng.standard_normal((200, 16))) < 0.15


def test_downstream_scores_for_classes_and_tags():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 40)
    x = rng.standard_normal((120, 8)) + 3 * np.eye(3, 8)[y]
    parts = [np.arange(0, 120, 3), np.arange(1, 120, 3), np.arange(2, 120, 3)]
    scores = downstream_scores(*(a for i in parts for a in (x[i], y[i])), ProbeConfig(), seed=0)
    assert scores["logreg_accuracy"] > 0.9 and scores["mlp_accuracy"] > 0.9 and scores["logreg_macro_f1"] > 0.9
    assert scores["mlp_hidden_layers"] in (0, 1, 2)
    tags = np.stack([y == 0, y != 2], axis=1).astype(int)
    multi = downstream_scores(*(a for i in parts for a in (x[i], tags[i])), ProbeConfig(), seed=0)
    assert multi["logreg_micro_auprc"] > 0.9 and "logreg_macro_auprc" in multi


def test_official_folds_are_recognised():
    assert _fold_splits([f"fold{i}" for i in (1, 2, 10, 3)]) == ["fold1", "fold2", "fold3", "fold10"]
    assert _fold_splits(["sensor-a", "sensor-b"]) == [] and _fold_splits(None) == []
