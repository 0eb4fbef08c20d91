import librosa
import numpy as np
import pytest
import torch

from edgekd.frontend import FrontendSpec, LogMel


def _signal(sr=8000, seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_power_spectrum_matches_torch_stft():
    spec = FrontendSpec(8000, 256, 80, 32)
    audio = torch.from_numpy(_signal())[None]
    ours = LogMel(spec).power(audio)
    ref = torch.stft(audio, 256, 80, window=torch.hann_window(256), center=True, pad_mode="constant",
                     return_complex=True).abs() ** 2
    assert ours.shape == ref.shape
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5 * float(ref.max()))


@pytest.mark.slow
def test_log_mel_matches_librosa_absolute_db():
    spec = FrontendSpec(8000, 256, 160, 64, top_db=None)
    y = _signal()
    ours = LogMel(spec)(torch.from_numpy(y)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=8000, n_fft=256, hop_length=160, n_mels=64, power=2.0,
                                         center=True, pad_mode="constant")
    ref = 10 * np.log10(np.maximum(mel, 1e-10))
    assert ours.shape == ref.shape == (64, spec.num_frames(len(y)))
    np.testing.assert_allclose(ours, ref, atol=1e-3)


def test_log_mel_top_db_matches_librosa_power_to_db():
    spec = FrontendSpec(8000, 256, 160, 64, top_db=80.0)
    y = _signal(seed=1)
    ours = LogMel(spec)(torch.from_numpy(y)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=8000, n_fft=256, hop_length=160, n_mels=64, center=True,
                                         pad_mode="constant")
    ref = librosa.power_to_db(mel, ref=np.max, amin=1e-10, top_db=80.0)
    np.testing.assert_allclose(ours, ref, atol=1e-3)
    assert ours.max() == 0.0 and ours.min() >= -80.0


def test_batch_rows_are_independent():
    frontend = LogMel(FrontendSpec(8000, 128, 80, 16))
    a, b = torch.from_numpy(_signal(seed=2)), torch.from_numpy(_signal(seed=3) * 0.01)
    both = frontend(torch.stack([a, b]))
    assert torch.allclose(both[0], frontend(a[None])[0], atol=1e-4)
    assert torch.allclose(both[1], frontend(b[None])[0], atol=1e-4)
