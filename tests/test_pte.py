"""`edgekd export --format pte` and `edgekd profile MODEL.pte` (the `executorch` extra): a portable FP32 ExecuTorch
program gated in ExecuTorch's own runtime, an INT8 one for Cortex-M (CMSIS-NN operators) gated through their reference
kernels, each with the memory plan its compiler wrote, which edgekd's own plan of the program must equal. Skipped
where the extra is not installed."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import MINI_RECIPE, one_line, run_cli_here

from edgekd.students.registry import STUDENTS

pytest.importorskip("executorch.runtime")
pytest.importorskip("tosa_serializer")

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}


@pytest.mark.slow
def test_pte_exports_are_gated_and_profiled_on_their_compilers_plan(tmp_path):
    from edgekd.formats.pte.runtime import pte_plan, run_pte
    from edgekd.run_dir import RunDir

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", tmp_path / "run").returncode == 0
    export = tmp_path / "export"
    done = run_cli_here("export", tmp_path / "run", "--format", "pte", "--no-fp16", "--cortex-m", "M7", "--out", export)
    assert done.returncode == 0, done.stderr
    report = json.loads((export / "export.json").read_text())
    variants = {v["file"]: v for v in report["variants"]}
    assert sorted(variants) == ["student.int8.pte", "student.pte"] and report["options"]["cortex_m"] == "M7"
    fp32, int8 = variants["student.pte"], variants["student.int8.pte"]
    assert fp32["passed"] and fp32["mean_cosine"] > 0.9999 and fp32["precision"] == "fp32"
    assert int8["passed"] and int8["mean_cosine"] > 0.99 and int8["precision"] == "int8"
    for name, variant in variants.items():
        assert variant["executorch_plan"] == pte_plan(export / name) and sum(variant["executorch_plan"]) > 0
    assert sum(int8["executorch_plan"]) < sum(fp32["executorch_plan"]) / 3
    assert int8["size_bytes"] < fp32["size_bytes"] / 3
    student, _ = RunDir(tmp_path / "run").load_student()
    audio = np.random.default_rng(0).standard_normal((3, 8000)).astype(np.float32) * 0.1
    with torch.no_grad():
        expected = student.eval()(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(run_pte(export / "student.pte", audio), expected, atol=1e-4)

    # profiled against a Cortex-M board: RAM judged on the compiler's plan, which edgekd's plan of the program equals
    done = run_cli_here("profile", export / "student.int8.pte", "--device", "nrf52840", "--json")
    assert done.returncode == 0, done.stderr
    profile = json.loads(done.stdout)
    assert profile["fits"] and profile["graph"] == "pte" and profile["executorch_plan"] == int8["executorch_plan"]
    assert profile["ram_bytes"] == sum(int8["executorch_plan"]) == profile["arena_bytes"]
    assert profile["macs"] > 0 and profile["params"] > 0 and profile["frontend_params"] == 0
    assert set(profile["bytes_by_dtype"]) >= {"int8"} and profile["storage_bytes"] == int8["size_bytes"]
    board = tmp_path / "tight.yaml"
    device = yaml.safe_load((Path(__file__).parent.parent / "devices" / "nrf52840.yaml").read_text())
    board.write_text(yaml.safe_dump(device | {"ram": profile["ram_bytes"] - 1, "ram_reserve": 0}))
    done = run_cli_here("profile", export / "student.int8.pte", "--device", board, "--json")
    assert done.returncode == 1 and "ram" in json.loads(done.stdout)["violations"][0]


def test_a_corrupt_program_is_one_line(tmp_path):
    from edgekd.errors import EdgekdError
    from edgekd.formats.pte.runtime import pte_plan, run_pte

    broken = tmp_path / "broken.pte"
    broken.write_bytes(b"garbage" * 20)
    with pytest.raises(EdgekdError, match="broken.pte: not a readable ExecuTorch program"):
        pte_plan(broken)
    with pytest.raises(EdgekdError, match="broken.pte: ExecuTorch cannot load it"):
        run_pte(broken, np.zeros((1, 8000), np.float32))
    one_line(run_cli_here("profile", broken), 2, "broken.pte", "not a readable ExecuTorch program")
    one_line(run_cli_here("profile", broken, "--max-latency-ms", "5"), 2, "broken.pte", "--max-latency-ms")


@pytest.mark.slow
@pytest.mark.parametrize("family", STUDENTS)
def test_every_family_declaring_int8_pte_runs_cortex_m_int8_close_to_pytorch(family, tmp_path):
    """The Cortex-M flow quantises the family's network (a family not declaring it fails in the flow), its reference
    kernels stay close to PyTorch, and edgekd's plan of the program equals the compiler's byte for byte."""
    from edgekd.formats.pte.export import quantize_pte
    from edgekd.metrics import cosine_rows
    from edgekd.profile import profile_model
    from edgekd.students.base import Network
    from edgekd.students.registry import build_student

    config = STUDENTS[family].config()
    torch.manual_seed(0)
    network = Network(build_student(config, 16).eval())
    with torch.no_grad():
        logmel = network.student.frontend(torch.randn(24, config.sample_rate) * 0.1)
        expected = network(logmel).numpy()
    path = tmp_path / f"{family}.int8.pte"
    try:
        run = quantize_pte(network, logmel[:16].numpy(), path, "M4")
    except Exception:  # noqa: BLE001 - whatever the flow raises, the family must not declare it
        assert "pte" not in config.int8_formats, family
        return
    assert "pte" in config.int8_formats, family
    assert cosine_rows(run(logmel[16:].numpy()), expected[16:]).min() > 0.99
    report = profile_model(path, latency_runs=0)
    assert report.arena_bytes == report.memory.total == sum(report.memory.figure) and report.macs > 0


@pytest.mark.slow
def test_mutations_of_a_program_never_crash_profile_or_give_negative_figures(tmp_path):
    """Bytes flipped, sizes, operator and value indices, inputs, outputs and the plan changed: no signal-killed
    process, no exit 3, one error line, no negative or non-finite figure (profile reads a .pte without ExecuTorch's
    runtime, so this is its reader's contract)."""
    from fuzzing import fuzz_profile, mutated_pte

    from edgekd.formats.pte.export import convert_pte
    from edgekd.students.registry import build_student

    config = STUDENTS["sea_cnn"].config()
    program = convert_pte(build_student(config, 16).eval(), torch.randn(1, config.sample_rate), tmp_path / "s.pte")
    (tmp_path / "mutants").mkdir()
    found = fuzz_profile(program, mutated_pte, 200, tmp_path / "mutants")
    codes = found.pop("codes")
    assert not any(found.values()), found
    assert len(codes) > 165 and codes.count(2) > 33 and codes.count(0) > 33
