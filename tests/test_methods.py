"""Each distillation method of `methods:` does what it claims: every test here fails if its method is disabled."""

import json

import numpy as np
import onnx
import pytest
import torch
import yaml
from conftest import MINI_RECIPE, ROOT, one_line, run_cli_here
from torch import nn

from edgekd.distillation import DistillationModel, Method
from edgekd.errors import RecipeError
from edgekd.losses import build_loss
from edgekd.losses.configs import MseConfig
from edgekd.methods import METHOD_NAMES, method_class
from edgekd.methods.attention import amad_loss
from edgekd.methods.difference_sampling import difference_scores
from edgekd.methods.label_revision import revise_labels
from edgekd.methods.selection import teacher_reliability
from edgekd.methods.teacher_free import TeacherFreeConfig, autoencoder_soft_labels
from edgekd.metrics import head_fidelity
from edgekd.recipe import recipe_from_dict
from edgekd.run_dir import method_context
from edgekd.supervision import (
    LogMel,
    Supervision,
    out_of_fold_log_probabilities,
    select_top,
)


class TinyStudent(nn.Module):
    """A linear 'student' on 16-sample inputs: enough to test objectives in milliseconds."""

    def __init__(self, dim: int = 4, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.embedding_dim = dim
        self.net = nn.Linear(16, dim)

    def forward(self, x):
        return self.net(x)


def _model(methods: dict, classes: int | None = 3, peer: nn.Module | None = None) -> DistillationModel:
    """A TinyStudent with the methods as a recipe names them, attached as distillation attaches them."""
    recipe = recipe_from_dict(dict(MINI_RECIPE, methods=methods), "r.yaml")
    built = recipe.methods.build(method_context(recipe))
    model = DistillationModel(TinyStudent(), build_loss(MseConfig()), built)
    labels = np.arange(classes) if classes else None
    logmel = LogMel(torch.nn.Identity(), np.zeros((1, 4, 4), np.float32))
    supervision = Supervision(0, labels, np.array(["clip"]), np.arange(1), None, logmel)
    for method in built:
        method.attach(model, supervision)
    if peer is not None:
        model.peer = peer
    return model


def _fit(model: DistillationModel, x, batch, steps=300, lr=0.05) -> DistillationModel:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        model.loss(model(x), batch, epoch=step).backward()
        optimizer.step()
    return model.eval()


def _classes(n=60, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    x = rng.standard_normal((n, 16)).astype(np.float32)
    x[np.arange(n), labels] += 3.0  # the label is readable from the input
    return torch.from_numpy(x), torch.from_numpy(labels)


def test_kd_soft_targets_teach_the_head():
    x, labels = _classes()
    teacher_says = (labels + 1) % 3  # a teacher that disagrees with every label
    soft = torch.log(torch.full((len(x), 3), 0.05).scatter(1, teacher_says[:, None], 0.9))
    batch = {"label": labels, "soft": soft}
    soft_only = _fit(_model({"kd": {"alpha": 0.0, "temperature": 2.0}}), x, batch)
    hard_only = _fit(_model({"kd": {"alpha": 1.0}}), x, batch)
    with torch.no_grad():
        assert (soft_only(x)["logits"].argmax(1) == teacher_says).float().mean() > 0.9
        assert (hard_only(x)["logits"].argmax(1) == labels).float().mean() > 0.9


def test_mutual_learning_pulls_the_peers_together():
    x, _ = _classes()
    distance = {}
    for weight in (1.0, 0.0):  # no teacher terms: only mutual learning can move the peers
        model = _fit(_model({"mutual": {"weight": weight}}, None, peer=TinyStudent(seed=1)), x, {}, steps=100,
                     lr=0.01)
        with torch.no_grad():
            out = model(x)
            distance[weight] = float((out["embedding"] - out["peer_embedding"]).pow(2).mean())
    with torch.no_grad():
        initial = float((TinyStudent()(x) - TinyStudent(seed=1)(x)).pow(2).mean())
    assert distance[0.0] == pytest.approx(initial, rel=1e-5)
    assert distance[1.0] < 0.1 * initial


def test_label_revision_puts_the_true_class_first_and_keeps_right_predictions():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2]])
    labels = np.array([0, 2, 1])
    revised = np.exp(revise_labels(np.log(p), labels, beta=0.8))
    assert np.allclose(revised[0], p[0])  # right: unchanged
    assert revised[1].argmax() == 2 and revised[2].argmax() == 1  # wrong: revised toward the label
    assert np.allclose(revised.sum(1), 1)
    assert revised[1, 1] > 0.05  # still soft: the teacher's dark knowledge stays


def test_selection_removes_teacher_supervision_from_unreliable_windows():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 0, 0, 1])
    reliability = teacher_reliability(np.log(p), labels)
    assert reliability.tolist() == pytest.approx([0.9, 0.2, 0.6, 0.7])
    assert select_top(reliability, np.arange(4), 0.5, None).tolist() == [0, 3]
    # trust 0: the teacher's target no longer moves the loss
    x = torch.randn(4, 16)
    model = _model({})
    batch = {"target": torch.randn(4, 4), "trust": torch.tensor([1.0, 0.0, 1.0, 1.0])}
    moved = dict(batch, target=batch["target"].clone())
    moved["target"][1] += 100
    assert float(model.loss(model(x), batch, 0)) == pytest.approx(float(model.loss(model(x), moved, 0)))
    trusting = dict(moved, trust=torch.ones(4))
    assert float(model.loss(model(x), trusting, 0)) > 10 * float(model.loss(model(x), batch, 0))


def test_censoring_drops_examples_too_hard_for_the_student():
    x = torch.randn(10, 16)
    target = torch.randn(10, 4)
    target[3] += 1000  # far beyond what the student can reach
    censored = _model({"censor": {"quantile": 0.8, "weight": 0.0, "start_epoch": 2}})
    out = censored(x)
    before = float(censored.loss(out, {"target": target}, epoch=1))  # still in the full-supervision epochs
    after = float(censored.loss(out, {"target": target}, epoch=2))
    assert before > 1e4 and after < 100


def test_difference_sampling_keeps_what_the_teacher_knows_and_the_reference_does_not():
    rng = np.random.default_rng(0)
    n = 120
    labels = np.arange(n) % 3
    teacher = np.eye(3)[labels] * 4 + 0.3 * rng.standard_normal((n, 3))  # the teacher finds every window easy
    reference = 0.3 * rng.standard_normal((n, 3))
    easy_for_reference = np.arange(n) < n // 2
    reference[easy_for_reference] += np.eye(3)[labels[easy_for_reference]] * 4
    train = np.arange(n)
    clips = np.arange(n).astype(str)
    logmel = LogMel(torch.nn.Identity(), np.zeros((n, 4, 4), np.float32))
    supervision = Supervision(0, labels, clips, train, teacher, logmel)
    supervision.teacher_log_probabilities = out_of_fold_log_probabilities(teacher, labels, train, clips, 5, 0, 3)
    scores = difference_scores(supervision, reference)
    kept = select_top(scores, train, 0.5, labels)
    assert len(kept) == n // 2 and set(np.bincount(labels[kept])) == {n // 6}  # every class kept alike
    assert (~easy_for_reference[kept]).mean() > 0.9


def test_relational_bank_matches_similarities_to_past_examples():
    x = torch.randn(8, 16)
    model = _model({"relational_bank": {"size": 16, "temperature": 0.1, "weight": 1.0}}, None)
    target = torch.randn(8, 4)
    model.loss(model(x), {"target": target}, 0)  # first batch only fills the bank
    assert int(model.bank_filled) == 8 and "bank_teacher" in model.state_dict()
    out = model(x)
    with_bank = float(model.loss(out, {"target": target}, 0))
    plain = float(_model({}, None).loss(out, {"target": target}, 0))
    assert with_bank > plain + 0.01  # the bank term is there...
    # ...and is zero when the student's similarities are the teacher's (any scale)
    model = _model({"relational_bank": {"size": 16}}, None)
    bank = model.methods[0]
    bank._bank_loss(model, 3 * target, target)
    assert float(bank._bank_loss(model, 3 * target, target)) == pytest.approx(0.0, abs=1e-5)


def test_attention_amad_aligns_heads_across_head_counts():
    torch.manual_seed(0)
    teacher = torch.softmax(torch.randn(2, 4, 5, 5) * 3, -1)
    student_same = teacher[:, [1, 3]]  # two of the teacher's four heads
    student_other = torch.softmax(torch.randn(2, 2, 5, 5) * 3, -1).requires_grad_()
    matched = float(amad_loss([student_same], [teacher], temperature=0.05))
    unmatched = amad_loss([student_other], [teacher], temperature=0.05)
    assert matched < 0.05 and float(unmatched) > 5 * matched
    unmatched.backward()
    assert student_other.grad.abs().sum() > 0


def test_teacher_free_reffakd_soft_labels_rank_each_class_first():
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    logmel = rng.standard_normal((30, 16, 20)).astype(np.float32)
    logmel[labels == 1, :8] += 3  # classes differ in spectrum
    logmel[labels == 2, 8:] += 3
    soft, mse = autoencoder_soft_labels(LogMel(torch.nn.Identity(), logmel), labels, np.arange(30), 3,
                                        TeacherFreeConfig(latent=8, epochs=5), 0)
    p = np.exp(soft)
    assert np.isfinite(mse) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert (p.argmax(1) == labels).all() and (p.max(1) < 0.999).all()  # soft, and right
    assert np.allclose(p[labels == 1], p[labels == 1][0])  # one soft label per class


def test_head_fidelity_reports_agreement_and_kl():
    logits = np.log(np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))
    teacher = np.log(np.array([[0.8, 0.2], [0.6, 0.4], [0.6, 0.4]]))
    out = head_fidelity(logits, np.array([0, 1, 1]), teacher)
    assert out["accuracy"] == pytest.approx(2 / 3) and out["teacher_accuracy"] == pytest.approx(1 / 3)
    assert out["top1_agreement"] == pytest.approx(2 / 3)
    expected_kl = (0.6 * np.log(0.6 / 0.3) + 0.4 * np.log(0.4 / 0.7)) / 3
    assert out["predictive_kl"] == pytest.approx(expected_kl, rel=1e-5)


def test_method_rules_are_one_line_errors():
    with pytest.raises(RecipeError, match="methods.*label_revision.*add a 'kd' section"):
        recipe_from_dict(dict(MINI_RECIPE, methods={"label_revision": {}}), "r.yaml")
    with pytest.raises(RecipeError, match="teacher 'none'.*methods.kd"):
        recipe_from_dict(dict(MINI_RECIPE, teacher={"name": "none"}), "r.yaml")
    with pytest.raises(RecipeError, match="methods.selection works on the teacher's outputs"):
        recipe_from_dict(dict(MINI_RECIPE, teacher={"name": "none"}, methods={"kd": {}, "selection": {}}), "r.yaml")
    with pytest.raises(RecipeError, match="use one of them"):
        recipe_from_dict(dict(MINI_RECIPE, methods={"kd": {}, "label_revision": {}, "teacher_free": {}}), "r.yaml")
    with pytest.raises(RecipeError, match="unknown key 'methods.kd.temprature'"):
        recipe_from_dict(dict(MINI_RECIPE, methods={"kd": {"temprature": 2}}), "r.yaml")


def _write(tmp_path, name, **sections):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(MINI_RECIPE, name=name, **sections)))
    return path


@pytest.mark.slow
def test_kd_run_reports_head_fidelity_and_tune_writes_a_tuned_recipe(tmp_path):
    recipe = _write(tmp_path, "kd", methods={"kd": {}, "label_revision": {}, "selection": {"keep": 0.5},
                                             "mutual": {}, "censor": {"start_epoch": 1}})
    done = run_cli_here("distill", recipe, "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run/metrics.json").read_text())
    assert {"accuracy", "teacher_accuracy", "top1_agreement", "predictive_kl"} <= set(metrics["head"])
    assert "cka" in metrics["fidelity"]["test"] and "head fidelity" in done.stdout
    assert metrics["methods"]["selection"]["teacher_supervised_train_windows"] == 10
    assert metrics["methods"]["enabled"] == ["kd", "label_revision", "selection", "censor", "mutual"]  # their order
    tuned = run_cli_here("tune", recipe, "--temperature", "1,4", "--alpha", "0.5,1", "--epochs", "1", "--out",
                    tmp_path / "tune", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    result = json.loads((tmp_path / "tune/tune.json").read_text())
    assert len(result["trials"]) == 4 and result["best"]["val_accuracy"] == max(
        t["val_accuracy"] for t in result["trials"])
    best = recipe_from_dict(yaml.safe_load((tmp_path / "tune/tuned.yaml").read_text()), "tuned.yaml")
    tuned_kd = best.methods.get("kd")
    assert (tuned_kd.temperature, tuned_kd.alpha) == (result["best"]["temperature"], result["best"]["alpha"])
    again = run_cli_here("tune", recipe, "--temperature", "1,4", "--alpha", "0.5,1", "--epochs", "1", "--out",
                    tmp_path / "tune", cwd=tmp_path)  # finished trials are read back, not retrained
    assert again.returncode == 0 and json.loads((tmp_path / "tune/tune.json").read_text())["trials"] == \
        result["trials"]
    bad = run_cli_here("tune", recipe, "--alpha", "0.5,x", cwd=tmp_path)
    assert bad.returncode == 2 and "--alpha takes comma-separated numbers" in bad.stderr


@pytest.mark.slow
def test_retrieval_knowledge_base_ships_in_the_model_and_counts_in_its_size(tmp_path):
    recipe = _write(tmp_path, "retrieval", methods={"retrieval": {"size": 6}, "difference_sampling": {}})
    run = tmp_path / "retrieval"
    assert run_cli_here("distill", recipe, "--out", run, cwd=tmp_path).returncode == 0
    assert run_cli_here("export", run, "--int8", "none", "--no-fp16", cwd=tmp_path).returncode == 0
    profiled = run_cli_here("profile", run / "export/student.onnx", "--json", "--runs", "0", cwd=tmp_path)
    size = json.loads(profiled.stdout)
    base_bytes = (6 * 8 + 6) * 4  # 6 unit entries × PCA 8 and their 6 norms, FP32
    assert size["knowledge_base_bytes"] == base_bytes
    # stored once: the exporter folded no transposed or normalised copy of the base into another initializer
    shapes = [sorted(t.dims) for t in onnx.load(run / "export/student.onnx").graph.initializer]
    assert shapes.count([6, 8]) == 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["methods"]["difference_sampling"]["kept_train_windows"] < metrics["windows"]["train"]


@pytest.mark.slow
def test_attention_alignment_and_teacher_free_runs(tmp_path):
    transformer = {"name": "transformer", "sample_rate": 8000, "n_fft": 128, "hop_length": 160, "n_mels": 32,
                   "width": 16, "layers": 2, "patch_frames": 5}
    teacher = _write(tmp_path, "t4", student=transformer | {"heads": 4})
    assert run_cli_here("distill", teacher, "--out", tmp_path / "t4", cwd=tmp_path).returncode == 0
    epoch_losses = {}
    for name, methods in (("s2", {}), ("s2amad", {"attention": {"teacher_run": str(tmp_path / "t4")}})):
        done = run_cli_here("distill", _write(tmp_path, name, student=transformer | {"heads": 2}, methods=methods),
                       "--out", tmp_path / name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        epoch_losses[name] = json.loads((tmp_path / name / "history.jsonl").read_text().splitlines()[0])["train_loss"]
    # same student, same seed, same data: the first epoch differs only by the attention term, which is positive
    assert epoch_losses["s2amad"] > epoch_losses["s2"]
    cnn = _write(tmp_path, "cnn", methods={"attention": {"teacher_run": str(tmp_path / "t4")}})
    one_line(run_cli_here("distill", cnn, "--out", tmp_path / "cnn", cwd=tmp_path), 2, "transformer attention maps")
    free = _write(tmp_path, "free", teacher={"name": "none"}, methods={"kd": {}, "teacher_free": {"epochs": 2}})
    done = run_cli_here("distill", free, "--out", tmp_path / "free", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "free/metrics.json").read_text())
    assert "fidelity" not in metrics and "accuracy" in metrics["head"]
    assert metrics["methods"]["teacher_free"]["autoencoder_reconstruction_mse"] > 0
    # no teacher to compare with, nor to fine-tune on: one line, exit 2
    one_line(run_cli_here("evaluate", tmp_path / "free", cwd=tmp_path), 2, "teacher-free run has no teacher")
    one_line(run_cli_here("export", tmp_path / "free", "--qat-epochs", "1"), 2, "--qat-epochs", "teacher 'none'")


def test_readme_lists_every_method_key_with_valid_defaults():
    text = (ROOT / "README.md").read_text()
    block = text.split("## Distillation methods", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    listed = yaml.safe_load(block)["methods"]
    assert set(listed) == set(METHOD_NAMES)
    for key, values in listed.items():
        config_class = method_class(key).config_model
        documented = config_class.model_validate(values)
        if key != "attention":  # its teacher_run has no default
            assert documented == config_class(), f"README's defaults for methods.{key} differ from the code's"


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_module_declares_one_method_named_as_its_module(name):
    method = method_class(name)
    assert issubclass(method, Method) and method.name == name
    assert len({method_class(n).order for n in METHOD_NAMES}) == len(METHOD_NAMES)  # one order, no ties
    required = {field for field, info in method.config_model.model_fields.items() if info.is_required()}
    assert required <= {"teacher_run"}, "a method's config needs defaults so `methods: {NAME: {}}` works"
    assert set(method.requires) | set(method.excludes) <= set(METHOD_NAMES)
    assert f"def test_{name}" in (ROOT / "tests" / "test_methods.py").read_text(), "each method has its own test"
