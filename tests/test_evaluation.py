from typing import get_args

import numpy as np
import pytest

from edgekd.configs import ProbeConfig
from edgekd.data.windows import Clips, Windows
from edgekd.metrics import linear_cka
from edgekd.protocols import PROTOCOLS, ProtocolName, clip_means
from edgekd.stages.evaluate import _fold_splits, _probe


def _windows(clip_labels: np.ndarray, windows_per_clip: int) -> Windows:
    clips = len(clip_labels)
    return Windows(Clips([f"c{i}" for i in range(clips)], np.full(clips, 5.0), clip_labels,
                         [str(n) for n in range(int(clip_labels.max()) + 1)] if clip_labels.ndim == 1 else
                         [f"tag{t}" for t in range(clip_labels.shape[1])], np.array(["train"] * clips)),
                   np.repeat(np.arange(clips), windows_per_clip), np.tile(np.arange(windows_per_clip) * 0.5, clips), 1.0)


def downstream_scores(train_x, train_y, val_x, val_y, test_x, test_y, probe, seed, protocol="window"):
    """The probes of one round on windows that are each their own clip."""
    x = np.concatenate([train_x, val_x, test_x])
    y = np.concatenate([train_y, val_y, test_y])
    windows = _windows(y, 1)
    bounds = np.cumsum([0, len(train_x), len(val_x), len(test_x)])
    split = tuple(np.arange(bounds[i], bounds[i + 1]) for i in range(3))
    return _probe(PROTOCOLS[protocol], {"x": x}, windows, [split], probe, seed)["x"][0]


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


def test_protocol_choices_are_declared_once():
    assert get_args(ProtocolName) == tuple(PROTOCOLS)


def test_clip_means_average_each_clips_windows():
    clips, means = clip_means(np.array([[1.0], [3.0], [10.0], [5.0]]), np.array([4, 4, 2, 4]))
    assert clips.tolist() == [2, 4] and means[:, 0].tolist() == [10.0, 3.0]


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["hear", "sea"])
def test_clip_protocols_score_clips_where_single_windows_are_ambiguous(protocol):
    """Each clip's windows are noisy (a window alone is right 60 % of the time) but their mean is clear: scored per
    clip, the clip protocols recover the class where the window protocol cannot."""
    rng = np.random.default_rng(3)
    clip_labels = np.repeat(np.arange(2), 60)
    windows = _windows(clip_labels, 15)
    signal = np.where(windows.labels == 1, 0.25, -0.25)[:, None]
    x = signal + rng.standard_normal((len(windows), 4))
    clip_split = np.arange(120) % 3
    split = tuple(np.flatnonzero(clip_split[windows.clip] == part) for part in range(3))
    scored = {name: _probe(PROTOCOLS[name], {"x": x}, windows, [split], ProbeConfig(), 0)["x"][0]
              for name in ("window", protocol)}
    assert scored["window"]["logreg_accuracy"] < 0.7
    assert scored[protocol]["logreg_accuracy"] > 0.9 and scored[protocol]["mlp_accuracy"] > 0.8


@pytest.mark.slow
def test_probe_scores_are_kept_and_fitted_again_only_for_new_features(tmp_path, monkeypatch):
    """A second student of the same teacher on the same data: the teacher's and the log-mel baseline's probes are
    read back, only the new student's are fitted."""
    import edgekd.stages.evaluate as evaluate

    monkeypatch.setenv("EDGEKD_CACHE_DIR", str(tmp_path))
    rng = np.random.default_rng(4)
    windows = _windows(np.repeat(np.arange(3), 20), 1)
    x = rng.standard_normal((60, 4)) + np.eye(3, 4)[windows.labels]
    split = tuple(np.arange(part, 60, 3) for part in range(3))
    first = _probe(PROTOCOLS["window"], {"teacher": x, "student": x[:, ::-1]}, windows, [split], ProbeConfig(), 0)
    kept_before = set((tmp_path / "probes").iterdir())
    fitted = []
    real_fit = evaluate.fit_and_predict
    monkeypatch.setattr(evaluate, "fit_and_predict", lambda *args: fitted.append(args[1].shape) or real_fit(*args))
    second = _probe(PROTOCOLS["window"], {"teacher": x, "student": 2 * x}, windows, [split], ProbeConfig(), 0)
    assert second["teacher"] == first["teacher"]
    assert len(fitted) == len(PROTOCOLS["window"].mlp_grid)  # the new student's classifiers only
    # the entry the second student's probes were kept in (which entry iterdir lists first depends on the hashes)
    (new_entry,) = set((tmp_path / "probes").iterdir()) - kept_before
    new_entry.write_text("{damaged")
    fitted.clear()
    _probe(PROTOCOLS["window"], {"teacher": x, "student": 2 * x}, windows, [split], ProbeConfig(), 0)
    assert len(fitted) == len(PROTOCOLS["window"].mlp_grid)  # the damaged entry, and only it, fitted again
