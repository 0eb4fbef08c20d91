import json

import pytest
from conftest import run_cli, run_cli_here

from edgekd.errors import EdgekdError
from edgekd.profile.devices import load_device, shipped_devices
from edgekd.students import PRESETS, STUDENTS
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


@pytest.mark.slow
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


LISTINGS = {("recipes",): "name", ("devices",): "name", ("teachers",): "name", ("students",): None,
            ("cache", "ls"): "key"}


@pytest.mark.slow
@pytest.mark.parametrize("command", LISTINGS)
def test_every_listing_reads_at_80_columns_and_has_json(command, tmp_path, preset_cache):
    """Names and figures are never cut with an ellipsis at 80 columns (`sea-stude…` was), and --json gives the
    records the table shows."""
    env = {"EDGEKD_CACHE_DIR": preset_cache if command == ("students",) else str(tmp_path)}
    shown = run_cli_here(*command, COLUMNS="80", **env)
    assert shown.returncode == 0, shown.stderr
    assert "…" not in shown.stdout and max(map(len, shown.stdout.splitlines())) <= 80
    listed = run_cli_here(*command, "--json", **env)
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)
    if command == ("students",):
        assert {f["name"] for f in records["families"]} == set(STUDENTS)
        assert [p["preset"] for p in records["presets"]] == list(PRESETS)
        for preset in PRESETS:
            assert preset in shown.stdout
    else:
        assert isinstance(records, list) and all(record[LISTINGS[command]] in shown.stdout for record in records)


@pytest.mark.slow
def test_students_measures_the_presets_once_then_reads_the_cache(tmp_path, monkeypatch):
    """`edgekd students` exported every preset on every call (28.6 s for a listing)."""
    from edgekd.stages import inventory

    monkeypatch.setenv("EDGEKD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(inventory, "PRESETS", {"dscnn": PRESETS["dscnn"]})  # the smallest, for speed
    measured = []
    real = inventory.measure_module
    monkeypatch.setattr(inventory, "measure_module", lambda *args: measured.append(1) or real(*args))
    first = inventory.preset_sizes(8000, 1.0)
    assert len(measured) == 1
    assert inventory.preset_sizes(8000, 1.0) == first and len(measured) == 1
    inventory.preset_sizes(16000, 1.0)  # another input size is measured
    assert len(measured) == 2
