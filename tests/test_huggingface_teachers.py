"""Hugging Face teachers (issue 32): for every architecture edgekd supports, a tiny randomly initialised model saved
with `save_pretrained` into a folder embeds through edgekd as transformers' own forward computes it."""

import sys

import numpy as np
import pytest
import torch
from conftest import distill_with_teacher, one_line

transformers = pytest.importorskip("transformers")

from edgekd.teachers.configs import HuggingfaceConfig  # noqa: E402
from edgekd.teachers.huggingface import ARCHITECTURES  # noqa: E402
from edgekd.teachers.registry import build_teacher  # noqa: E402

TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
CONV = {"conv_dim": (16, 16), "conv_kernel": (10, 3), "conv_stride": (5, 2), "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2}


def _tiny(model_type: str):
    """A tiny config and feature extractor of the architecture (random weights: the forward is what is compared)."""
    T = transformers
    if model_type in ("wav2vec2", "hubert", "wavlm", "data2vec-audio"):
        config = T.AutoConfig.for_model(model_type, **TINY, **CONV)
        return config, T.Wav2Vec2FeatureExtractor(sampling_rate=16000, do_normalize=True)
    if model_type == "audio-spectrogram-transformer":
        return (T.ASTConfig(**TINY, max_length=100, num_mel_bins=32, frequency_stride=10, time_stride=10),
                T.ASTFeatureExtractor(num_mel_bins=32, max_length=100))  # 1 s per call: a 1.5 s window is two
    if model_type == "whisper":
        return (T.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=16,
                                vocab_size=100, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                decoder_start_token_id=1, max_target_positions=32),
                T.WhisperFeatureExtractor(feature_size=16))
    if model_type == "clap":
        return (T.ClapConfig(text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                          "intermediate_size": 64, "vocab_size": 100},
                             audio_config={"hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2],
                                           "patch_embeds_hidden_size": 16}, projection_dim=16),
                T.ClapFeatureExtractor(truncation="rand_trunc"))
    raise AssertionError(f"no tiny model for {model_type}: add one")


def _saved(model_type: str, folder):
    config, features = _tiny(model_type)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config).save_pretrained(folder)
    features.save_pretrained(folder)
    return folder


def _transformers_forward(folder, audio: np.ndarray, layer: int) -> np.ndarray:
    """The window embedding as transformers computes it, whole windows one call each."""
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    features = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
    inputs = features(list(audio), sampling_rate=features.sampling_rate, return_tensors="pt")
    with torch.no_grad():
        if model.config.model_type == "clap":
            return model.get_audio_features(**inputs).pooler_output.numpy()
        if model.config.model_type == "whisper":  # 20 ms per encoder position; the rest is padding to 30 s
            hidden = model.get_encoder()(**inputs, output_hidden_states=True).hidden_states[layer]
            return hidden[:, : audio.shape[1] // 320].mean(dim=1).numpy()
        hidden = model(**inputs, output_hidden_states=True).hidden_states[layer]
        if model.config.model_type == "audio-spectrogram-transformer":
            return hidden[:, 0].numpy()
        return hidden.mean(dim=1).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(ARCHITECTURES))
def test_every_architecture_embeds_as_transformers_forward(model_type, tmp_path):
    folder = _saved(model_type, tmp_path / model_type)
    audio = (0.1 * np.random.default_rng(0).standard_normal((3, 16000))).astype(np.float32)
    teacher = build_teacher(HuggingfaceConfig(path=str(folder), batch_size=2))  # batches of 2, the last one short
    assert teacher.sample_rate == _tiny(model_type)[1].sampling_rate  # the rate its feature extractor takes
    ours = teacher.embed(torch.from_numpy(audio)).numpy()
    assert ours.shape == (3, teacher.dim)
    np.testing.assert_allclose(ours, _transformers_forward(folder, audio, -1), atol=2e-5)
    if model_type != "clap":  # another hidden state, chosen by index
        first = build_teacher(HuggingfaceConfig(path=str(folder), layer=1)).embed(torch.from_numpy(audio)).numpy()
        np.testing.assert_allclose(first, _transformers_forward(folder, audio, 1), atol=2e-5)
    if model_type == "audio-spectrogram-transformer":  # a window longer than one call: its segments averaged
        longer = np.concatenate([audio, audio[:, :8000]], axis=1)
        halves = (_transformers_forward(folder, longer[:, :16000], -1)
                  + _transformers_forward(folder, np.pad(longer[:, 16000:], ((0, 0), (0, 8000))), -1)) / 2
        np.testing.assert_allclose(teacher.embed(torch.from_numpy(longer)).numpy(), halves, atol=2e-5)


@pytest.mark.slow
def test_a_run_distils_from_a_hugging_face_folder(tmp_path):
    folder = _saved("wav2vec2", tmp_path / "wav2vec2")
    done = distill_with_teacher(tmp_path, {"name": "huggingface", "path": str(folder)}, epochs=1)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_bad_hugging_face_teachers_are_one_line(tmp_path, monkeypatch):
    def distill(**teacher):
        return distill_with_teacher(tmp_path, {"name": "huggingface", **teacher})

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # nothing cached, and no download attempted
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line(distill(path="facebook/wav2vec2-base"), 2, "facebook/wav2vec2-base", "local Hugging Face cache",
             "hf download")
    (tmp_path / "no-config").mkdir()
    one_line(distill(path=str(tmp_path / "no-config")), 2, "no config.json")
    folder = _saved("wav2vec2", tmp_path / "wav2vec2")
    one_line(distill(path=str(folder), layer=3), 2, "teacher.layer 3", "0…2")
    one_line(distill(path=str(folder), pooling="max"), 2, "pooling")
    clap = _saved("clap", tmp_path / "clap")
    one_line(distill(path=str(clap), layer=1), 2, "teacher.layer", "projected audio embedding")
    monkeypatch.setitem(sys.modules, "transformers", None)  # without its extra: one line naming the install command
    one_line(distill(path=str(folder)), 2, "pip install 'edgekd[huggingface]'")
    assert not (tmp_path / "run").exists()
