import librosa
import numpy as np

from edgekd.data.audio import load_clips
from edgekd.data.configs import SyntheticUrbanConfig
from edgekd.data.synthetic import URBANSOUND8K_CLASSES
from edgekd.data.windows import make_windows
from edgekd.metrics import probe_accuracy
from edgekd.recipe import ProbeConfig


def test_deterministic_with_all_classes_and_splits():
    config = SyntheticUrbanConfig(clips_per_class=5)
    a, b = load_clips(config, 3, 16000), load_clips(config, 3, 16000)
    assert a.ids == b.ids and all(np.array_equal(x, y) for x, y in zip(a.audio, b.audio))
    assert a.class_names == URBANSOUND8K_CLASSES and len(set(a.labels.tolist())) == 10
    assert set(a.splits) == {"train", "val", "test"}
    other = load_clips(config, 4, 16000)
    assert not np.array_equal(a.audio[0], other.audio[0])
    assert all(np.isfinite(x).all() and 0 < np.abs(x).max() <= 0.5 + 1e-6 for x in a.audio)


def test_windows_cut_long_clips_with_hop():
    clips = load_clips(SyntheticUrbanConfig(clips_per_class=3, clip_seconds=2.5), 0, 16000)
    windows = make_windows(clips, seconds=1.0, hop_seconds=0.5)
    # 2.5 s at a 0.5 s hop: starts 0, 0.5, 1.0, 1.5 (the last one zero-padded)
    assert len(windows) == 4 * 30
    assert windows.audio.shape == (120, 16000)
    assert windows.starts[:4].tolist() == [0.0, 0.5, 1.0, 1.5]


def test_log_mel_statistics_do_not_solve_the_task():
    """Within-class variation and noise keep a linear probe on plain log-mel statistics below 100 %."""
    clips = load_clips(SyntheticUrbanConfig(clips_per_class=20), 0, 16000)
    features = []
    for audio in clips.audio:
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=16000, n_mels=64))
        features.append(np.concatenate([mel.mean(1), mel.std(1)]))
    x, y = np.stack(features), clips.labels
    train, test = clips.splits == "train", clips.splits != "train"
    accuracy = probe_accuracy(x[train], y[train], x[test], y[test], ProbeConfig(), seed=0)
    assert 0.3 < accuracy < 0.97, accuracy
