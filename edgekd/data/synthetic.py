"""A deterministic synthetic urban-sound dataset with the 10 UrbanSound8K classes.

Each clip is one sound event (with random onset, duration, pitch, timbre and modulation) over background noise of
random colour at a random SNR, so that classes overlap in plain log-mel statistics. It exists so that the demo and
the tests run offline; real datasets come in through the same Catalogue interface and audio store.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from edgekd.data.configs import SyntheticUrbanConfig
from edgekd.data.sources import Catalogue, Source

URBANSOUND8K_CLASSES = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
]


def _envelope(rng, n, sr, min_s, max_s):
    """A 0/1 gate with soft edges covering a random stretch of the clip."""
    length = int(rng.uniform(min_s, max_s) * sr)
    length = min(length, n)
    start = rng.integers(0, n - length + 1)
    env = np.zeros(n)
    ramp = max(1, int(0.01 * sr))
    seg = np.ones(length)
    seg[:ramp] = np.linspace(0, 1, ramp)[: len(seg[:ramp])]
    seg[-ramp:] = np.minimum(seg[-ramp:], np.linspace(1, 0, ramp)[-len(seg[-ramp:]) :])
    env[start : start + length] = seg
    return env


def _harmonic(freq_track, sr, n_harmonics, rolloff, rng):
    """Sum of harmonics following an instantaneous frequency track (Hz per sample)."""
    phase = 2 * np.pi * np.cumsum(freq_track) / sr
    out = np.zeros_like(freq_track)
    for h in range(1, n_harmonics + 1):
        alias_free = (freq_track * h) < sr / 2
        out += alias_free * np.sin(h * phase + rng.uniform(0, 2 * np.pi)) * rolloff**(h - 1)
    return out


def _bandpass(x, sr, low, high):
    high = min(high, 0.45 * sr)
    sos = signal.butter(2, [low, high], btype="band", fs=sr, output="sos")
    return signal.sosfilt(sos, x)


def _air_conditioner(rng, n, sr):
    t = np.arange(n) / sr
    hum = _harmonic(np.full(n, rng.uniform(45, 130)), sr, rng.integers(3, 8), rng.uniform(0.4, 0.8), rng)
    hiss = _bandpass(rng.standard_normal(n), sr, rng.uniform(200, 600), rng.uniform(1500, 4000))
    wobble = 1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t)
    return (hum * rng.uniform(0.3, 1.0) + hiss) * wobble


def _car_horn(rng, n, sr):
    f0 = rng.uniform(280, 520)
    tone = _harmonic(np.full(n, f0), sr, 8, rng.uniform(0.6, 0.9), rng)
    if rng.random() < 0.6:  # many horns are two-tone
        tone += _harmonic(np.full(n, f0 * rng.uniform(1.2, 1.3)), sr, 8, 0.7, rng)
    return tone * _envelope(rng, n, sr, 0.2, 0.8)


def _children_playing(rng, n, sr):
    out = np.zeros(n)
    t = np.arange(n) / sr
    for _ in range(rng.integers(2, 6)):
        f0 = rng.uniform(250, 550) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(3, 8) * t + rng.uniform(0, 6)))
        glide = np.linspace(1, rng.uniform(0.7, 1.4), n)
        voice = _harmonic(f0 * glide, sr, 10, rng.uniform(0.5, 0.8), rng)
        voice = _bandpass(voice, sr, 300, rng.uniform(2500, 4000))
        out += voice * _envelope(rng, n, sr, 0.1, 0.5) * rng.uniform(0.3, 1)
    return out + 0.3 * _bandpass(rng.standard_normal(n), sr, 500, 3000)


def _dog_bark(rng, n, sr):
    out = np.zeros(n)
    for _ in range(rng.integers(1, 4)):
        length = int(rng.uniform(0.08, 0.25) * sr)
        start = rng.integers(0, max(1, n - length))
        f_start = rng.uniform(450, 900)
        track = np.linspace(f_start, f_start * rng.uniform(0.4, 0.7), length)
        bark = _harmonic(track, sr, 12, rng.uniform(0.6, 0.85), rng) + 0.5 * rng.standard_normal(length)
        bark *= np.exp(-np.linspace(0, rng.uniform(2, 6), length))
        out[start : start + length] += bark[: n - start]
    return out


def _drilling(rng, n, sr):
    t = np.arange(n) / sr
    whine = _harmonic(np.full(n, rng.uniform(700, 2500)), sr, 4, 0.5, rng)
    grind = _bandpass(rng.standard_normal(n), sr, 1000, 6000)
    am = 0.6 + 0.4 * np.sign(np.sin(2 * np.pi * rng.uniform(15, 45) * t))
    return (whine + rng.uniform(0.2, 0.8) * grind) * am * _envelope(rng, n, sr, 0.4, 1.0)


def _engine_idling(rng, n, sr):
    rate = rng.uniform(18, 45)
    pulses = np.zeros(n)
    period = sr / rate
    for k in range(int(n / period) + 1):
        pulses[min(n - 1, int(k * period + rng.normal(0, 0.02 * period)))] = rng.uniform(0.7, 1.3)
    body = signal.sosfilt(signal.butter(2, rng.uniform(150, 600), fs=sr, output="sos"), pulses)
    rumble = _bandpass(rng.standard_normal(n), sr, 30, 300)
    return body * 30 + rng.uniform(0.1, 0.5) * rumble


def _gun_shot(rng, n, sr):
    out = np.zeros(n)
    for _ in range(rng.integers(1, 3)):
        start = rng.integers(0, int(0.8 * n))
        length = n - start
        decay = np.exp(-np.arange(length) / (rng.uniform(0.03, 0.2) * sr))
        blast = _bandpass(rng.standard_normal(length), sr, rng.uniform(60, 300), rng.uniform(2000, 7000))
        out[start:] += blast * decay * rng.uniform(0.5, 1.5)
    return out


def _jackhammer(rng, n, sr):
    t = np.arange(n) / sr
    rate = rng.uniform(10, 25)
    hits = (np.sin(2 * np.pi * rate * t) > rng.uniform(0.2, 0.7)).astype(float)
    noise = _bandpass(rng.standard_normal(n), sr, rng.uniform(100, 500), rng.uniform(3000, 7000))
    return noise * hits * _envelope(rng, n, sr, 0.5, 1.0)


def _siren(rng, n, sr):
    t = np.arange(n) / sr
    low, high = rng.uniform(500, 800), rng.uniform(1000, 1600)
    rate = rng.uniform(0.5, 3.0)
    if rng.random() < 0.5:  # wail: smooth sweep; else yelp: sawtooth sweep
        sweep = 0.5 * (1 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 6)))
    else:
        sweep = (rate * t + rng.random()) % 1.0
    return _harmonic(low + (high - low) * sweep, sr, 5, 0.5, rng)


def _street_music(rng, n, sr):
    out = np.zeros(n)
    notes = 2 ** (rng.integers(-12, 13, size=rng.integers(2, 6)) / 12) * 261.63
    step = n // len(notes)
    for i, f0 in enumerate(notes):
        chord = sum(
            _harmonic(np.full(step, f0 * ratio), sr, 6, rng.uniform(0.4, 0.7), rng) for ratio in (1.0, 1.26, 1.5)
        )
        decay = np.exp(-np.linspace(0, rng.uniform(1, 4), step))
        out[i * step : (i + 1) * step] = chord * decay
    beat = _bandpass(rng.standard_normal(n), sr, 50, 200) * (np.sin(2 * np.pi * rng.uniform(1.5, 3) * np.arange(n) / sr) > 0.8)
    return out + rng.uniform(0, 0.6) * beat


_GENERATORS = [
    _air_conditioner,
    _car_horn,
    _children_playing,
    _dog_bark,
    _drilling,
    _engine_idling,
    _gun_shot,
    _jackhammer,
    _siren,
    _street_music,
]


def _background(rng, n, sr):
    """Coloured noise (slope between white and brown) plus, sometimes, a distant tonal hum."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    slope = rng.uniform(0.0, 2.0)  # 0 white, 1 pink, 2 brown (power)
    spectrum /= np.maximum(freqs, 20.0) ** (slope / 2)
    noise = np.fft.irfft(spectrum, n)
    if rng.random() < 0.3:
        noise += np.std(noise) * _harmonic(np.full(n, rng.uniform(50, 300)), sr, 3, 0.5, rng)
    return noise


def _rms(x):
    return np.sqrt(np.mean(x**2)) + 1e-12


def _split_assignment(count: int, fractions, rng) -> np.ndarray:
    n_val = max(1, int(round(fractions[1] * count)))
    n_test = max(1, int(round(fractions[2] * count)))
    n_train = count - n_val - n_test
    labels = np.array(["train"] * n_train + ["val"] * n_val + ["test"] * n_test)
    return labels[rng.permutation(count)]


def synthetic_urban_clips(config: SyntheticUrbanConfig, seed: int) -> Catalogue:
    """The clips' ids, labels and splits; their audio is generated when the audio store asks for it."""
    sources = []
    for label, name in enumerate(URBANSOUND8K_CLASSES):
        # One stream per class: adding clips to one class does not change the others.
        class_splits = _split_assignment(config.clips_per_class, config.split_fractions,
                                         np.random.default_rng([seed, label]))
        sources += [Source(f"{name}-{index:04d}", None, label, str(class_splits[index]))
                    for index in range(config.clips_per_class)]
    identity = {"dataset": config.name, "seed": seed} | config.model_dump(mode="json", exclude={"name"})

    def decode(wanted: list[Source]):
        wanted_ids = {source.clip_id for source in wanted}
        for label, generate in enumerate(_GENERATORS):
            if not any(source.label == label for source in wanted):
                continue
            for index, (clip_id, audio) in enumerate(_class_clips(config, seed, label, generate)):
                if clip_id in wanted_ids:
                    yield sources[label * config.clips_per_class + index], (audio, config.sample_rate)

    return Catalogue(sources, list(URBANSOUND8K_CLASSES), identity, decode)


def _class_clips(config: SyntheticUrbanConfig, seed: int, label: int, generate):
    """(clip id, audio) of one class, in order: each clip continues its class's random stream."""
    sr = config.sample_rate
    n = int(round(config.clip_seconds * sr))
    rng = np.random.default_rng([seed, label])
    _split_assignment(config.clips_per_class, config.split_fractions, rng)  # the draws the splits took
    for index in range(config.clips_per_class):
        event = generate(rng, n, sr)
        background = _background(rng, n, sr)
        snr = rng.uniform(*config.snr_db)
        background *= _rms(event) / _rms(background) / (10 ** (snr / 20))
        mix = event + background
        mix *= rng.uniform(0.05, 0.5) / np.max(np.abs(mix))  # random playback level
        yield f"{URBANSOUND8K_CLASSES[label]}-{index:04d}", mix.astype(np.float32)
