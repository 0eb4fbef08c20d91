"""Quantisation-aware fine-tuning (`train: {qat: {epochs: N}}`, issue 31): PT2E fake quantisation on the student's
network, trained by the same trainer (seeded, checkpointed, resumable), the run's student then being the fine-tuned model the integer exports quantise.
Needs the executorch extra (torchao's PT2E, ExecuTorch's XNNPACK quantizer)."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import MINI_RECIPE, one_line, run_cli_here

pytest.importorskip("torchao")
pytest.importorskip("executorch")

from edgekd.configs import TrainConfig  # noqa: E402
from edgekd.distillation import DistillationModel  # noqa: E402
from edgekd.losses import build_loss  # noqa: E402
from edgekd.losses.configs import MseConfig  # noqa: E402
from edgekd.quantisation_aware import QuantisationAwareStudent  # noqa: E402
from edgekd.students.configs import SeaCnnConfig  # noqa: E402
from edgekd.students.sea_cnn import build_sea_cnn  # noqa: E402
from edgekd.trainer import train_student  # noqa: E402

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}
CONFIG = SeaCnnConfig(sample_rate=8000, n_fft=128, hop_length=160, n_mels=16, widths=[4, 8])


def _fine_tune(tmp_path, name, interrupt_after=None, resume=False):
    torch.manual_seed(0)
    student = build_sea_cnn(CONFIG, 4).eval()
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal((24, 8000))).astype(np.float32)
    targets = rng.standard_normal((24, 4)).astype(np.float32)
    aware = QuantisationAwareStudent(student, student.frontend(torch.from_numpy(audio[:2])))

    def on_epoch(log):
        if interrupt_after is not None and log.epoch == interrupt_after:
            raise KeyboardInterrupt

    model = DistillationModel(aware, build_loss(MseConfig()), [])
    history = train_student(model, audio, {"target": targets}, np.arange(16), np.arange(16, 24),
                            TrainConfig(epochs=3, batch_size=5, device="cpu", lr=1e-3), seed=0,
                            checkpoint=tmp_path / name, resume=resume, on_epoch=on_epoch)
    return aware, student, history


def test_qat_is_deterministic_and_resumes_exactly_fake_quantisers_included(tmp_path):
    full, student, history = _fine_tune(tmp_path, "a.pt")
    again, _, _ = _fine_tune(tmp_path, "b.pt")
    state = full.state_dict()
    assert any(".activation_post_process" in key or "activation_post_process" in key for key in state)
    for key, value in state.items():
        assert torch.equal(value, again.state_dict()[key]), key
    with pytest.raises(KeyboardInterrupt):
        _fine_tune(tmp_path, "c.pt", interrupt_after=1)
    resumed, _, resumed_history = _fine_tune(tmp_path, "c.pt", resume=True)
    assert [h.epoch for h in resumed_history] == [1, 2, 3] == [h.epoch for h in history]
    for key, value in state.items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    # the fine-tuned weights land in the student's own architecture; the fake quantisers' state does not
    trained = full.trained_student(student)
    assert set(trained.state_dict()) == set(student.state_dict())
    assert not torch.equal(trained.state_dict()["body.0.weight"], student.state_dict()["body.0.weight"])


@pytest.mark.slow
def test_a_qat_run_is_its_fine_tuned_student_and_exports_it(tmp_path):
    recipe = tmp_path / "qat.yaml"
    train = dict(MINI_RECIPE["train"], epochs=1, qat={"epochs": 2})
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=train)))
    done = run_cli_here("distill", recipe, "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["training"]["qat"]["epochs"] == 2 and (run / "qat_checkpoint.pt").is_file()
    assert "qat" in yaml.safe_load((run / "recipe.yaml").read_text())["train"]
    # student.pt holds the fine-tuned weights, not the trained ones the main checkpoint kept
    trained = torch.load(run / "checkpoint.pt", weights_only=True)["best"]["state"]
    tuned = torch.load(run / "student.pt", weights_only=True)["state_dict"]
    assert not torch.equal(trained["student.body.0.weight"], tuned["body.0.weight"])
    gate = ("--format", "tflite", "--no-fp16", "--min-cosine", "0.9", "--max-accuracy-drop", "100", "--no-fallback")
    exported = run_cli_here("export", run, *gate, "--out", tmp_path / "export")
    assert exported.returncode == 0, exported.stderr
    report = json.loads((tmp_path / "export" / "export.json").read_text())
    int8 = next(v for v in report["variants"] if v["file"] == "student.int8.tflite")
    # the INT8 file against the fine-tuned model it quantises: what it was trained to round like
    assert int8["mean_cosine"] > 0.9 and int8["tflm_arena"]["measured"]
    # the same fine-tuning asked of a finished run without train.qat: `edgekd export --qat-epochs 2`
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(train, qat=None))))
    assert run_cli_here("distill", plain, "--out", tmp_path / "plain").returncode == 0
    before = {path.name: path.read_bytes() for path in (tmp_path / "plain").iterdir()}
    exported = run_cli_here("export", tmp_path / "plain", *gate, "--qat-epochs", "2")
    assert exported.returncode == 0, exported.stderr
    qat_run = tmp_path / "plain" / "export" / "qat"  # a run of its own beside the files
    assert "fine-tuned with quantisation-aware training" in exported.stderr
    assert json.loads((tmp_path / "plain" / "export" / "export.json").read_text())["qat"]["epochs"] == 2
    # trained from the run's final checkpoint as train.qat trains after training: the same weights, bit for bit
    here = torch.load(qat_run / "student.pt", weights_only=True)["state_dict"]
    assert here.keys() == tuned.keys() and all(torch.equal(here[key], tuned[key]) for key in tuned)
    assert {path.name: path.read_bytes() for path in (tmp_path / "plain").iterdir() if path.is_file()} == \
        {name: data for name, data in before.items() if name != "export"}  # the run itself as it was
    fine_tuned = (qat_run / "qat_checkpoint.pt").stat().st_mtime_ns
    assert run_cli_here("export", tmp_path / "plain", *gate, "--qat-epochs", "2").returncode == 0
    assert (qat_run / "qat_checkpoint.pt").stat().st_mtime_ns == fine_tuned  # read back, not trained again


def test_train_qat_refuses_what_it_cannot_do_in_one_line(tmp_path):
    def recipe(**sections):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(dict(MINI_RECIPE, **{"teacher": TINY_TEACHER, **sections})))
        return path

    train = MINI_RECIPE["train"]
    one_line(run_cli_here("distill", recipe(train=dict(train, qat={"epochs": 0})), "--out", tmp_path / "a"), 2,
             "qat", "epochs")
    one_line(run_cli_here("distill", recipe(train=dict(train, qat={"epochs": 1, "lr": -1})), "--out",
                          tmp_path / "b"), 2, "lr")
    one_line(run_cli_here("distill", recipe(train=dict(train, qat={"epochs": 1}), teacher={"name": "none"},
                                            methods={"kd": {}, "teacher_free": {"epochs": 2}}), "--out",
                          tmp_path / "c"), 2, "train.qat", "teacher 'none'")
    one_line(run_cli_here("distill", recipe(train=dict(train, qat={"epochs": 1}), methods={"mutual": {}}), "--out",
                          tmp_path / "d"), 2, "train.qat", "mutual")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()  # refused before any work
    for bad, named in ((("--qat-epochs", "0"), "--qat-epochs 0"), (("--qat-lr", "-1"), "--qat-lr"),
                       (("--qat-lr", "nan", "--qat-epochs", "1"), "--qat-lr"), (("--qat-lr", "0.001"), "--qat-epochs"),
                       (("--qat-epochs", "1", "--int8", "none"), "--int8 static")):
        one_line(run_cli_here("export", tmp_path / "no-run", *bad), 2, named)
