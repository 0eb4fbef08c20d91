"""`edgekd deploy`: the library generated, compiled with TFLM and CMSIS-NN by arm-none-eabi-gcc for a Cortex-M4 and a
Cortex-M7, run under QEMU on held-out windows and compared with the host. Real toolchain, real emulator: skipped
where they or the third-party sources (../shared/third_party) are absent; .ci/run installs them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import MINI_RECIPE, one_line, run_cli, run_cli_here

pytest.importorskip("tflite_micro")
pytest.importorskip("litert_torch")
THIRD_PARTY = Path(__file__).resolve().parents[2] / "shared" / "third_party"
if not THIRD_PARTY.is_dir() or shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
    pytest.skip("firmware builds need arm-none-eabi-gcc, qemu-system-arm and ../shared/third_party",
                allow_module_level=True)

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}
WINDOWS = 12


@pytest.fixture(scope="module")
def firmware_env(tmp_path_factory) -> dict:
    """One object cache for the module: TFLM's objects compile once per core, as for a user."""
    return {"EDGEKD_CACHE_DIR": str(tmp_path_factory.mktemp("firmware-cache")), "EDGEKD_THIRD_PARTY": str(THIRD_PARTY)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deploy")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))))
    assert run_cli_here("distill", recipe, "--out", folder / "run").returncode == 0
    return folder / "run"


@pytest.fixture(scope="module")
def cortex_m4(run_dir, firmware_env) -> Path:
    """The INT8 student, front-end outside, built for nrf52840 (Cortex-M4F) and run under QEMU."""
    done = run_cli_here("deploy", run_dir, "--device", "nrf52840", "--build", "--windows", WINDOWS,
                        "--out", run_dir / "m4", **firmware_env)
    assert done.returncode == 0, done.stderr
    return run_dir / "m4"


def _measured(folder: Path) -> dict:
    return json.loads((folder / "deploy.json").read_text())


@pytest.mark.slow
def test_int8_firmware_on_cortex_m4_equals_the_host_and_its_c_frontend_the_pytorch_one(cortex_m4):
    deployed = _measured(cortex_m4)
    measured = deployed["measured"]
    assert deployed["core"] == "cortex-m4" and deployed["precision"] == "int8" and deployed["input"] == "logmel"
    assert measured["windows"] == WINDOWS and measured["outputs_identical"] == WINDOWS  # byte for byte
    assert measured["output_max_abs_diff"] == 0.0
    assert measured["frontend_max_db_diff"] < 0.01 and measured["frontend_min_cosine"] >= 0.999
    assert measured["student_mean_cosine"] > 0.9  # the core's embedding of the audio against FP32 PyTorch's
    # the image holds the model; its RAM the arena the core's allocator used, and a stack measured on the core
    assert measured["flash"] > deployed["model_bytes"] and measured["rodata"] >= deployed["model_bytes"]
    assert measured["arena_used"] <= deployed["arena_bytes"] <= measured["bss"]
    assert 0 < measured["stack"] < 64 * 1024 and measured["ram"] == measured["data"] + measured["bss"] + measured["stack"]
    assert measured["network_instructions"] > 0 and measured["frontend_instructions"] > 0
    library = {path.name for path in cortex_m4.iterdir()}
    assert {"edgekd_model.h", "edgekd_model.cc", "edgekd_config.h", "edgekd_model_data.cc", "edgekd_frontend.c",
            "edgekd_frontend_tables.c", "Makefile", "README.md", "model.tflite"} <= library
    config = (cortex_m4 / "edgekd_config.h").read_text()
    assert config.count("(resolver).Add") == len(deployed["operators"])  # exactly the model's operators
    assert f"#define EDGEKD_ARENA_BYTES {deployed['arena_bytes']}" in config


@pytest.mark.slow
def test_int16x8_firmware_on_cortex_m4_takes_an_int16_logmel_and_equals_the_host(run_dir, cortex_m4, firmware_env):
    """TFLM's 16x8 kernels (CMSIS-NN's s16 ones where it has them) on the core: the same output bytes as on x86, the
    C front-end quantised to int16, and the cost of 16-bit activations in arena and instructions beside INT8."""
    done = run_cli_here("deploy", run_dir, "--device", "nrf52840", "--precision", "int16x8", "--build", "--windows",
                        4, "--out", run_dir / "m4-16", **firmware_env)
    assert done.returncode == 0, done.stderr
    deployed, int8 = _measured(run_dir / "m4-16"), _measured(cortex_m4)
    measured = deployed["measured"]
    assert deployed["precision"] == "int16x8" and "#define EDGEKD_INPUT_INT16 1" in (
        run_dir / "m4-16" / "edgekd_config.h").read_text()
    assert measured["outputs_identical"] == 4 and measured["frontend_max_db_diff"] < 0.01
    assert measured["student_mean_cosine"] >= int8["measured"]["student_mean_cosine"] - 1e-3
    assert deployed["arena_bytes"] > int8["arena_bytes"]


@pytest.mark.slow
def test_fp32_firmware_on_cortex_m7_with_the_frontend_inside(run_dir, firmware_env):
    done = run_cli_here("deploy", run_dir, "--device", "stm32h7", "--frontend", "include", "--build", "--windows", 2,
                        "--out", run_dir / "m7", **firmware_env)
    assert done.returncode == 0, done.stderr
    deployed = _measured(run_dir / "m7")
    measured = deployed["measured"]
    assert deployed["core"] == "cortex-m7" and deployed["precision"] == "fp32" and deployed["input"] == "audio"
    assert measured["output_max_abs_diff"] <= 1e-5 and measured["frontend_max_db_diff"] is None
    assert not (run_dir / "m7" / "edgekd_frontend.c").exists()


@pytest.mark.slow
def test_a_changed_mel_table_is_caught(cortex_m4, firmware_env, monkeypatch, tmp_path):
    """The C front-end computed with one filter of the mel table changed: the log-mel and the embedding through it
    no longer match the PyTorch path."""
    import edgekd.stages.deploy as stage

    for key, value in firmware_env.items():
        monkeypatch.setenv(key, value)
    trained = stage._mel_of

    def changed(student, spec):
        mel = trained(student, spec).copy()
        mel[len(mel) // 2] *= 3.0
        return mel

    monkeypatch.setattr(stage, "_mel_of", changed)
    with pytest.raises(stage.BudgetExceeded, match="C front-end differs from the trained one"):
        stage.deploy(cortex_m4 / "export", "nrf52840", tmp_path / "changed", True, 4, "exclude", "int8", None)
    measured = _measured(tmp_path / "changed")["measured"]  # its figures are kept, to inspect
    assert measured["outputs_identical"] == 4  # the network itself is the same
    assert measured["frontend_max_db_diff"] > 1.0


@pytest.mark.slow
def test_a_firmware_over_the_devices_flash_exits_1_with_the_figure(cortex_m4, firmware_env, tmp_path):
    device = yaml.safe_load((Path(__file__).parents[1] / "devices" / "nrf52840.yaml").read_text())
    small = tmp_path / "small-m4.yaml"
    small.write_text(yaml.safe_dump(dict(device, name="small-m4", flash="96KiB", flash_reserve="16KiB")))
    done = run_cli_here("deploy", cortex_m4 / "export", "--device", small, "--build",
                        "--windows", 2, "--out", tmp_path / "small", **firmware_env)
    one_line(done, 1, "does not fit small-m4", "flash", "budget")
    assert _measured(tmp_path / "small")["measured"]["flash"] > 80 * 1024  # written before the verdict


@pytest.mark.slow
def test_profile_and_check_judge_the_firmwares_own_figures(cortex_m4, tmp_path):
    measured = _measured(cortex_m4)["measured"]
    done = run_cli_here("profile", cortex_m4, "--device", "stm32l4r5", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["graph"] == "firmware" and report["storage_bytes"] == measured["flash"]
    assert report["ram_bytes"] == measured["ram"]
    instructions = measured["frontend_instructions"] + measured["network_instructions"]
    assert np.isclose(report["latency_ms"], instructions * measured["cycles_per_instruction"] / 120e3)  # 120 MHz
    slow = run_cli_here("profile", cortex_m4, "--device", "nrf52840", "--max-latency-ms", report["latency_ms"] / 4)
    assert slow.returncode == 1 and "latency" in slow.stderr
    config = tmp_path / "edgekd.yaml"
    config.write_text(yaml.safe_dump({"checks": [{"model": str(cortex_m4), "devices": ["nrf52840"],
                                                  "max_latency_ms": 1e6}]}))
    assert run_cli_here("check", config, "--runs", 0).returncode == 0
    one_line(run_cli_here("profile", cortex_m4, "--device", "stm32h7"), 2, "cortex-m4", "deploy for it")


@pytest.mark.slow
def test_a_tflite_from_outside_edgekd_runs_on_random_inputs(cortex_m4, firmware_env, tmp_path):
    """No export.json beside it: a tensor-in library (no front-end, no embed call), run on seeded inputs."""
    shutil.copyfile(cortex_m4 / "model.tflite", tmp_path / "vendor.tflite")
    done = run_cli_here("deploy", tmp_path / "vendor.tflite", "--device", "stm32l4r5", "--build", "--windows", 3,
                        **firmware_env)
    assert done.returncode == 0, done.stderr
    deployed = _measured(tmp_path / "deploy" / "stm32l4r5")
    assert deployed["input"] == "tensor" and deployed["measured"]["outputs_identical"] == 3
    assert not (tmp_path / "deploy" / "stm32l4r5" / "edgekd_frontend.c").exists()
    assert "edgekd_embed_audio" not in (tmp_path / "deploy" / "stm32l4r5" / "README.md").read_text()


def test_each_cores_cycles_per_instruction_is_the_committed_calibration():
    from edgekd.firmware.toolchain import CORES

    results = Path(__file__).parents[1] / "benchmarks" / "results" / "firmware.json"
    calibration = json.loads(results.read_text())["results"]["calibration"]
    assert {core.name: round(core.cpi, 3) for core in CORES.values()} == {
        name: round(figures["cycles_per_instruction"], 3) for name, figures in calibration.items()}


def test_a_device_without_a_core_the_toolchain_builds_is_one_line(tmp_path):
    one_line(run_cli_here("deploy", tmp_path, "--device", "esp32-s3"), 2, "Xtensa LX7", "esp32-s3")


def test_a_missing_source_tree_is_one_line(tmp_path):
    one_line(run_cli_here("deploy", tmp_path, "--device", "nrf52840", "--third-party", tmp_path), 2,
             "tflite-micro", str(tmp_path))
    done = run_cli_here("deploy", tmp_path, "--device", "nrf52840", EDGEKD_THIRD_PARTY="")
    one_line(done, 2, "--third-party", "EDGEKD_THIRD_PARTY")


def test_a_missing_toolchain_is_one_line(tmp_path):
    done = run_cli("deploy", tmp_path, "--device", "nrf52840", "--third-party", THIRD_PARTY, PATH=str(tmp_path))
    one_line(done, 2, "arm-none-eabi-gcc", "apt-get install")
