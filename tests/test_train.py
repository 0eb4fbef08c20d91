import numpy as np
import pytest
import torch

from edgekd.configs import TrainConfig
from edgekd.distillation import DistillationModel
from edgekd.losses import build_loss
from edgekd.losses.configs import MseConfig
from edgekd.students.configs import SeaCnnConfig
from edgekd.students.sea_cnn import build_sea_cnn
from edgekd.trainer import train_student

CONFIG = SeaCnnConfig(sample_rate=8000, n_fft=128, hop_length=160, n_mels=16, widths=[4, 8])


def _data():
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((24, 8000))).astype(np.float32)
    targets = rng.standard_normal((24, 4)).astype(np.float32)
    return audio, targets, np.arange(16), np.arange(16, 24)


def _train(tmp_path, name, **kwargs):
    return _run(tmp_path, name, TrainConfig(epochs=3, batch_size=5, device="cpu"), **kwargs)


def test_same_seed_same_weights_and_resume_is_exact(tmp_path):
    full, history = _train(tmp_path, "a.pt")
    again, _ = _train(tmp_path, "b.pt")
    assert len(history) == 3
    for key, value in full.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path, "c.pt", interrupt_after=1)
    assert (tmp_path / "c.pt").is_file() and not (tmp_path / "c.pt.tmp").exists()
    resumed, resumed_history = _train(tmp_path, "c.pt", resume=True)
    assert [h.epoch for h in resumed_history] == [1, 2, 3]
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_training_reduces_loss(tmp_path):
    _, history = _train(tmp_path, "d.pt")
    assert history[-1].train_loss < history[0].train_loss


def _run(tmp_path, name, config, interrupt_after=None, resume=False):
    torch.manual_seed(0)
    student = build_sea_cnn(CONFIG, 4)
    audio, targets, train, val = _data()

    def on_epoch(log):
        if interrupt_after is not None and log.epoch == interrupt_after:
            raise KeyboardInterrupt

    model = DistillationModel(student, build_loss(MseConfig()), [])
    history = train_student(model, audio, {"target": targets}, train, val, config, seed=0,
                            checkpoint=tmp_path / name, resume=resume, on_epoch=on_epoch)
    return student, history


def test_sea_schedule_drops_the_rate_and_stops_early(tmp_path):
    config = TrainConfig(epochs=40, batch_size=8, optimizer="adam", lr=0.05, weight_decay=0, schedule="plateau",
                         warmup_epochs=0, plateau_patience=1, plateau_factor=0.1, early_stopping=3, device="cpu")
    _, history = _run(tmp_path, "sea.pt", config)
    rates = [h.lr for h in history]
    assert len(history) < 40  # early stopping ended the run
    assert rates[0] == 0.05 and min(rates) <= 0.005 + 1e-12  # dropped ×0.1 at least once


def test_accumulation_and_ema_resume_exactly(tmp_path):
    config = TrainConfig(epochs=3, batch_size=4, accumulate=2, ema=0.9, schedule="plateau", plateau_patience=1,
                         device="cpu")
    full, history = _run(tmp_path, "a.pt", config)
    assert len(history) == 3
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, "b.pt", config, interrupt_after=2)
    resumed, _ = _run(tmp_path, "b.pt", config, resume=True)
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    plain, _ = _run(tmp_path, "c.pt", config.model_copy(update={"ema": None}))
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in full.state_dict().items())


def test_reduced_precision_body_keeps_the_front_end_fp32():
    """The bf16 path used on CUDA, exercised with CPU autocast: the front-end is FP32, the output FP32."""
    torch.manual_seed(0)
    student = build_sea_cnn(CONFIG, 4)
    audio = torch.randn(4, 8000) * 0.1
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)  # returns None: the output is left as it is
        return hook

    student.frontend.register_forward_hook(record("frontend"))
    student.body[0].register_forward_hook(record("body"))
    student.train()
    student.autocast = torch.bfloat16
    out = student(audio)
    assert seen == {"frontend": torch.float32, "body": torch.bfloat16} and out.dtype == torch.float32
    out.pow(2).mean().backward()
    student.eval()
    student.autocast = None
    assert student(audio).dtype == torch.float32


def test_loader_with_workers_gives_the_same_batches():
    from edgekd.trainer import batches

    x, y = torch.randn(20, 16), {"target": torch.randn(20, 3), "label": torch.arange(20)}
    plan = [np.array([3, 1, 7]), np.array([0, 19]), np.array([5])]
    direct = list(batches(x, y, plan, torch.device("cpu"), workers=0))
    loaded = list(batches(x, y, plan, torch.device("cpu"), workers=2))
    assert len(direct) == len(loaded) == 3
    for (a, b), (c, d) in zip(direct, loaded):
        assert torch.equal(a, c) and b.keys() == d.keys() and all(torch.equal(b[k], d[k]) for k in b)
    assert torch.equal(direct[0][0], x[[3, 1, 7]]) and direct[0][1]["label"].tolist() == [3, 1, 7]
