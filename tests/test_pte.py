"""`edgekd export --format pte` (the `executorch` extra): a portable FP32 ExecuTorch program, gated in ExecuTorch's
own runtime, with the memory plan its compiler wrote. Skipped where the extra is not installed."""

import json

import numpy as np
import pytest
import torch
import yaml
from conftest import MINI_RECIPE, run_cli_here

pytest.importorskip("executorch.runtime")

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}


@pytest.mark.slow
def test_pte_export_is_gated_in_executorch_and_reports_its_plan(tmp_path):
    from edgekd.pte import pte_plan, run_pte
    from edgekd.run_dir import RunDir

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", tmp_path / "run").returncode == 0
    done = run_cli_here("export", tmp_path / "run", "--format", "onnx,pte", "--int8", "none", "--no-fp16", "--out",
                        tmp_path / "export")
    assert done.returncode == 0, done.stderr
    variants = {v["file"]: v for v in json.loads((tmp_path / "export" / "export.json").read_text())["variants"]}
    pte = variants["student.pte"]
    assert pte["passed"] and pte["mean_cosine"] > 0.9999 and pte["precision"] == "fp32"
    path = tmp_path / "export" / "student.pte"
    assert pte["executorch_plan"] == pte_plan(path) and sum(pte["executorch_plan"]) > 0
    student, _ = RunDir(tmp_path / "run").load_student()
    audio = np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32) * 0.1
    with torch.no_grad():
        expected = student.eval()(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(run_pte(path, audio), expected, atol=1e-4)


def test_a_corrupt_program_is_one_line(tmp_path):
    from edgekd.errors import EdgekdError
    from edgekd.pte import pte_plan, run_pte

    broken = tmp_path / "broken.pte"
    broken.write_bytes(b"garbage" * 20)
    with pytest.raises(EdgekdError, match="broken.pte: not a readable ExecuTorch program"):
        pte_plan(broken)
    with pytest.raises(EdgekdError, match="broken.pte: ExecuTorch cannot load it"):
        run_pte(broken, np.zeros((1, 8000), np.float32))


@pytest.mark.parametrize("family", ["sea_cnn", "l3", "dscnn", "mobilenet", "transformer"])
def test_every_family_declaring_pte_runs_in_executorch_as_in_pytorch(family, tmp_path):
    from edgekd.pte import convert_pte, run_pte
    from edgekd.students.registry import STUDENTS, build_student

    config = STUDENTS[family].config()
    assert "pte" in config.formats
    student = build_student(config, 16).eval()
    audio = torch.randn(2, config.sample_rate) * 0.1
    with torch.no_grad():
        expected = student(audio).numpy()
    np.testing.assert_allclose(run_pte(convert_pte(student, audio, tmp_path / f"{family}.pte"), audio.numpy()),
                               expected, atol=1e-4)
