import numpy as np

from edgekd.metrics import downstream_scores, linear_cka
from edgekd.recipe import ProbeConfig
from edgekd.stages.evaluate import _fold_splits


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
    tags = np.stack([y == 0, y != 2], axis=1).astype(int)
    multi = downstream_scores(*(a for i in parts for a in (x[i], tags[i])), ProbeConfig(), seed=0)
    assert multi["logreg_micro_auprc"] > 0.9 and "logreg_macro_auprc" in multi


def test_mlp_grid_picks_a_hidden_layer_where_a_linear_probe_cannot_separate_the_classes():
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, (600, 2))
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)  # XOR: no line separates the classes
    parts = [np.arange(0, 600, 3), np.arange(1, 600, 3), np.arange(2, 600, 3)]
    scores = downstream_scores(*(a for i in parts for a in (x[i], y[i])), ProbeConfig(), seed=0)
    assert scores["logreg_accuracy"] < 0.7
    assert scores["mlp_hidden_layers"] >= 1 and scores["mlp_accuracy"] > 0.9


def test_official_folds_are_recognised():
    assert _fold_splits([f"fold{i}" for i in (1, 2, 10, 3)]) == ["fold1", "fold2", "fold3", "fold10"]
    assert _fold_splits(["sensor-a", "sensor-b"]) == [] and _fold_splits(None) == []
