import pytest
from conftest import run_cli

from edgekd.errors import EdgekdError
from edgekd.profile.devices import load_device, shipped_devices
from edgekd.units import parse_size


def test_shipped_devices_have_budgets_and_sources():
    devices = {d.name: d for d in shipped_devices()}
    assert {"stm32h7", "stm32l4r5", "esp32-s3", "nrf52840", "raspberry-pi-zero-2w", "raspberry-pi-4",
            "jetson-orin-nano"} <= set(devices)
    stm = devices["stm32h7"]
    assert stm.ram == 1024 * 1024 and stm.flash == 2 * 1024 * 1024
    assert 0 < stm.ram_budget < stm.ram and 0 < stm.flash_budget < stm.flash
    assert all(d.source for d in devices.values())


def test_sizes():
    assert parse_size("1KB") == 1000 and parse_size("1KiB") == 1024 and parse_size("1.5 MB") == 1_500_000
    assert parse_size(42) == 42
    with pytest.raises(EdgekdError, match="cannot read 'lots'"):
        parse_size("lots")


def test_bad_device_file_names_the_key(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("name: b\ndescription: d\ncpu: c\ncores: 1\nclock_mhz: 1\nram: 1MB\nflash: 1MB\n"
                    "runtime: onnxruntime\ndtypes: [int8]\nsource: s\nsram: 2MB\n")
    with pytest.raises(EdgekdError, match="unknown key 'sram'"):
        load_device(str(path))
    path.write_text(path.read_text().replace("sram: 2MB", "").replace("ram: 1MB", "ram: lots"))
    with pytest.raises(EdgekdError, match="key 'ram'"):
        load_device(str(path))
    with pytest.raises(EdgekdError, match="device 'nope' not found"):
        load_device("nope")


def test_devices_and_recipes_commands_list_what_ships():
    devices = run_cli("devices")
    assert devices.returncode == 0 and "stm32h7" in devices.stdout and "raspberry-pi-4" in devices.stdout
    recipes = run_cli("recipes")
    assert recipes.returncode == 0 and "demo" in recipes.stdout
    teachers = run_cli("teachers")
    for name in ("crepe", "l3", "onnx", "torchscript", "python", "precomputed"):
        assert name in teachers.stdout
    helped = run_cli("--help")
    for command in ("distill", "export", "profile", "recipes", "devices", "teachers", "cache"):
        assert command in helped.stdout
