import librosa
import numpy as np
import pytest
from conftest import load_data

from edgekd.configs import ProbeConfig
from edgekd.data.configs import SyntheticUrbanConfig
from edgekd.data.synthetic import URBANSOUND8K_CLASSES, synthetic_urban_clips
from edgekd.metrics import probe_accuracy


def _generated(config: SyntheticUrbanConfig, seed: int) -> list[np.ndarray]:
    listed = synthetic_urban_clips(config, seed)
    return [audio for _, (audio, _) in listed.decode(listed.sources)]


def test_deterministic_with_all_classes_and_splits():
    config = SyntheticUrbanConfig(clips_per_class=5)
    listed = synthetic_urban_clips(config, 3)
    a, b = _generated(config, 3), _generated(config, 3)
    assert len(a) == 50 and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert listed.class_names == URBANSOUND8K_CLASSES and len({s.label for s in listed.sources}) == 10
    assert {s.split for s in listed.sources} == {"train", "val", "test"}
    assert not np.array_equal(a[0], _generated(config, 4)[0])
    assert all(np.isfinite(x).all() and 0 < np.abs(x).max() <= 0.5 + 1e-6 for x in a)
    some = [listed.sources[i] for i in (7, 23)]  # asked for alone, a clip is what it is in the whole set
    assert all(np.array_equal(audio, a[i]) for (_, (audio, _)), i in zip(listed.decode(some), (7, 23)))


def test_windows_are_index_rows_read_from_the_store():
    config = {"name": "synthetic_urban", "clips_per_class": 3, "clip_seconds": 2.5, "sample_rate": 16000}
    data = load_data(config, 16000, seconds=1.0, hop_seconds=0.5)
    windows, audio = data.windows, data.teacher_audio
    # 2.5 s at a 0.5 s hop: starts 0, 0.5, 1.0, 1.5
    assert len(windows) == 4 * 30 and windows.starts[:4].tolist() == [0.0, 0.5, 1.0, 1.5]
    assert audio[:].shape == (120, 16000) and audio[:].dtype == np.float32
    clip = _generated(SyntheticUrbanConfig(**{k: v for k, v in config.items() if k != "name"}), 0)[0]
    step = audio.stored[0].scale  # int16 with the clip's own scale: within half a step of the float32 clip
    for row in range(4):
        np.testing.assert_allclose(audio[row], clip[8000 * row : 8000 * row + 16000], atol=step / 2 + 1e-9)
    assert np.array_equal(audio[[1, 2]], audio[1:3])  # overlapping windows are reads, not copies


@pytest.mark.slow
def test_log_mel_statistics_do_not_solve_the_task():
    """Within-class variation and noise keep a linear probe on plain log-mel statistics below 100 %."""
    listed = synthetic_urban_clips(SyntheticUrbanConfig(clips_per_class=20), 0)
    features = []
    for _, (audio, rate) in listed.decode(listed.sources):
        mel = librosa.power_to_db(librosa.feature.melspectrogram(y=audio, sr=rate, n_mels=64))
        features.append(np.concatenate([mel.mean(1), mel.std(1)]))
    x, y = np.stack(features), np.asarray([s.label for s in listed.sources])
    splits = np.asarray([s.split for s in listed.sources])
    train, test = splits == "train", splits != "train"
    accuracy = probe_accuracy(x[train], y[train], x[test], y[test], ProbeConfig(), seed=0)
    assert 0.3 < accuracy < 0.97, accuracy
