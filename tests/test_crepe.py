import numpy as np
import torch

from edgekd.teachers.configs import CrepeConfig
from edgekd.teachers.crepe import (
    CrepeTeacher,
    bin_to_frequency,
    frame_signal,
    load_crepe,
)


def test_full_crepe_loads_pretrained_weights_with_published_size():
    net = load_crepe("full")
    assert sum(p.numel() for p in net.parameters()) == 22_239_976  # CREPE "full": 22.2 M
    assert sum(p.numel() for p in load_crepe("tiny").parameters()) == 486_552


def test_pitch_of_a_440_hz_tone():
    net = load_crepe("full")
    t = np.arange(16000) / 16000
    audio = torch.tensor(0.5 * np.sin(2 * np.pi * 440 * t), dtype=torch.float32)[None]
    frames = frame_signal(audio, 1600)[0]
    with torch.no_grad():
        bins = net(frames).argmax(dim=1).float()
    freqs = bin_to_frequency(bins)
    cents_off = 1200 * np.log2(float(freqs.median()) / 440)
    assert abs(cents_off) < 20, f"median pitch {float(freqs.median()):.1f} Hz"


def test_window_embedding_is_deterministic_mean_of_frames():
    teacher = CrepeTeacher(CrepeConfig(variant="tiny", hop_ms=250))
    audio = torch.randn(2, 16000) * 0.1
    first, second = teacher.embed(audio), teacher.embed(audio)
    assert first.shape == (2, 256) and torch.equal(first, second)
    frames = frame_signal(audio[:1], teacher.hop)[0]
    with torch.no_grad():
        manual = teacher.net.embed(frames).mean(0)
    assert torch.allclose(first[0], manual, atol=1e-5)
