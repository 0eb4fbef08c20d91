"""The L3-Net Keras-HDF5 importer: the published SEA student (when ../shared is present) and an OpenL3-layout file."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from edgekd.errors import EdgekdError
from edgekd.formats.onnx.export import export_onnx
from edgekd.formats.onnx.session import run_onnx
from edgekd.teachers.configs import L3Config
from edgekd.teachers.l3 import L3Teacher, load_l3, trainable_parameters

SEA = Path(__file__).resolve().parents[2] / "shared" / "models" / "edgel3_sea_ust_audio_emb_64.h5"
needs_sea = pytest.mark.skipif(not SEA.is_file(), reason="../shared/models/edgel3_sea_ust_audio_emb_64.h5 absent")


def _noisy(n, samples, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (n, 1)) * t) * rng.uniform(0.05, 0.5, (n, 1))
    return torch.from_numpy((tones + 0.05 * rng.standard_normal((n, samples))).astype(np.float32))


@needs_sea
def test_sea_student_loads_with_published_size_and_embeds_deterministically():
    net = load_l3(SEA)
    assert trainable_parameters(net) == 398_306
    audio = _noisy(4, 8000)
    with torch.no_grad():
        first, second = net(audio), net(audio)
    assert first.shape == (4, 64) and torch.isfinite(first).all() and torch.equal(first, second)
    assert float(first.abs().sum()) > 0
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 9 and all(abs(bn.eps - 1e-3) < 1e-9 for bn in bns)


@needs_sea
def test_sea_identity_is_the_network_as_loaded_not_the_recipes_fallback_keys():
    """The cache key and what is recorded of the teacher: SEA-64 is 8 kHz, 64 mels, 64-dim, not mel256 / 512."""
    identity = L3Teacher(L3Config(path=str(SEA))).identity()
    assert identity["sample_rate"] == 8000 and identity["n_mels"] == 64 and identity["embedding_size"] == 64
    assert "input_repr" not in identity


@needs_sea
def test_sea_front_end_rebuilt_equals_the_stored_kernels():
    net = load_l3(SEA)
    front = net.layers[0]
    assert front.pad == (432, 432)  # TF "same" at n_dft 1024, hop 160 → 50 frames for 1 s at 8 kHz
    with h5py.File(SEA, "r") as f:
        group = f["model_weights/melspectrogram_1/melspectrogram_1"]
        real = group["real_kernels:0"][:, 0, 0, :]
        imag = group["imag_kernels:0"][:, 0, 0, :]
        mel = group["Variable:0"][:]
    ours = front.dft[:, 0, :].numpy()
    np.testing.assert_allclose(ours[:513].T, real, atol=1e-6)
    np.testing.assert_allclose(ours[513:].T, imag, atol=1e-6)
    np.testing.assert_allclose(front.mel.numpy().T, mel, atol=1e-6)
    with torch.no_grad():
        spec = front(_noisy(1, 8000))
    assert spec.shape == (1, 1, 64, 50) and float(spec.max()) == 0.0 and float(spec.min()) >= -80.0


@pytest.mark.slow
@needs_sea
def test_sea_exported_onnx_matches_pytorch(tmp_path):
    net = load_l3(SEA)
    audio = _noisy(8, 8000, seed=1)
    path = export_onnx(net, audio[:1], tmp_path / "sea.onnx")
    with torch.no_grad():
        ref = net(audio).numpy()
    out = run_onnx(path, audio.numpy())
    cos = (out * ref).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1))
    assert cos.min() > 0.9999


def write_openl3_weights_only(path: Path, input_repr: str = "mel256", seed: int = 0) -> None:
    """A weights-only .h5 in OpenL3's layout (random weights): layer groups at the root, no model_config."""
    rng = np.random.default_rng(seed)
    filters = [64, 64, 128, 128, 256, 256, 512, 512]
    names = ["batch_normalization_1"]
    layers = {"batch_normalization_1": _bn_weights(1, rng)}
    c_in = 1
    for i, c_out in enumerate(filters):
        conv = "audio_embedding_layer" if i == 7 else f"conv2d_{i + 1}"
        norm = f"batch_normalization_{i + 2}"
        layers[conv] = {"kernel": (rng.standard_normal((3, 3, c_in, c_out)) * np.sqrt(2 / (9 * c_in))).astype(
            np.float32), "bias": np.zeros(c_out, np.float32)}
        layers[norm] = _bn_weights(c_out, rng)
        names += [conv, norm]
        c_in = c_out
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in names]
        for name in names:
            group = f.create_group(name)
            group.attrs["weight_names"] = [f"{name}/{w}:0".encode() for w in layers[name]]
            for w, value in layers[name].items():
                group.create_dataset(f"{name}/{w}:0", data=value)


def _bn_weights(channels, rng):
    return {"gamma": np.ones(channels, np.float32), "beta": np.zeros(channels, np.float32),
            "moving_mean": rng.normal(0, 0.1, channels).astype(np.float32),
            "moving_variance": rng.uniform(0.5, 2, channels).astype(np.float32)}


@pytest.mark.slow
def test_openl3_layout_from_weights_only_file(tmp_path):
    path = tmp_path / "openl3_audio_mel256_env.h5"
    write_openl3_weights_only(path)
    teacher = L3Teacher(L3Config(path=str(path), input_repr="mel256"))
    params = trainable_parameters(teacher.net)
    assert abs(params - 4.69e6) / 4.69e6 < 0.01, params  # OpenL3 / L3-Net audio: about 4.69 M
    assert teacher.sample_rate == 48000 and teacher.dim == 512
    with torch.no_grad():
        spec = teacher.net.layers[0](torch.randn(1, 48000) * 0.1)
    assert spec.shape == (1, 1, 256, 199)  # 256 mels; TF "same" at hop 242 → ceil(48000 / 242) frames
    emb = teacher.embed(torch.randn(2, 96000) * 0.1)  # a 2 s window: two 1 s segments averaged
    assert emb.shape == (2, 512) and torch.isfinite(emb).all()
    wide = L3Teacher(L3Config(path=str(path), input_repr="mel256", embedding_size=6144))
    assert wide.dim == 6144


def test_l3_without_a_file_says_which_file_is_needed(tmp_path):
    with pytest.raises(EdgekdError, match="openl3_audio_mel256_music.h5"):
        L3Teacher(L3Config())
    with pytest.raises(EdgekdError, match="file not found"):
        L3Teacher(L3Config(path=str(tmp_path / "none.h5")))
    broken = tmp_path / "broken.h5"
    broken.write_text("not hdf5")
    with pytest.raises(EdgekdError, match="not a readable HDF5 file"):
        L3Teacher(L3Config(path=str(broken)))


@pytest.mark.slow
@needs_sea
def test_distill_counts_seas_network_apart_from_its_front_end_constants():
    """SEA-64's file holds 1.48 M values, of which 0.40 M are the network and the rest its DFT and mel matrices: the
    distill table shows them apart, as profile does. The network counts the deployed graph's values (397,159), not
    Keras's trainable ones (398,306): the export folds each BatchNorm that follows a convolution into it (its gamma
    and beta gone, 2 x 576), keeps the one on the input spectrogram (gamma, beta, mean, variance: 4) and counts the three
    float constants of the dB step past the front-end's LOG (ln 10, 10 and the -80 dB floor)."""
    from rich.console import Console

    from edgekd.profile.modules import measure_module
    from edgekd.render.tables import distill_table
    from edgekd.stages.distill import DistillMetrics, NetworkSummary, TrainingSummary
    from edgekd.units import format_count

    net, example, _ = L3Teacher(L3Config(path=str(SEA))).deployable(1.0)
    facts = measure_module(net, example)
    batch_norms = [m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert trainable_parameters(net) == 398_306 and batch_norms == [1, 32, 32, 64, 64, 128, 128, 64, 64]
    folded = 2 * sum(batch_norms[1:])
    assert facts.params - facts.frontend_params == 398_306 - folded + 2 * batch_norms[0] + 3 == 397_159
    assert facts.frontend_params > 1e6
    summary = NetworkSummary("l3", 64, facts, facts.macs, 1)
    metrics = DistillMetrics("0", "sea", "digest", 0, {}, summary, summary, TrainingSummary(1, 1, None, None, "cpu", 1, 1),
                             {})
    console = Console(record=True, width=160)
    console.print(distill_table(metrics))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in console.export_text().splitlines()
            if line.count("│") >= 4}
    assert rows["parameters (network)"] == format_count(facts.params - facts.frontend_params)
    assert rows["front-end constants (DFT, mel)"] == format_count(facts.frontend_params)
