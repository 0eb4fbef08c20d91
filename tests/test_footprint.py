"""A candidate student measured against a device before any training (what `edgekd search` prunes on)."""

import pytest
import torch

from edgekd.profile.devices import load_device
from edgekd.profile.modules import footprint
from edgekd.students import PRESETS, build_student
from edgekd.students.base import Network


@pytest.mark.slow
def test_int8_footprint_is_smaller_and_without_the_front_end_fits_a_microcontroller():
    config, dim = PRESETS["dscnn"]
    student = build_student(config, dim).eval()
    audio = 0.1 * torch.randn(1, config.sample_rate)
    nrf52840 = load_device("nrf52840")
    fp32, int8 = (footprint(student, audio, nrf52840, precision) for precision in ("fp32", "int8"))
    assert int8.storage_bytes < fp32.storage_bytes / 2 and int8.ram_bytes < fp32.ram_bytes
    assert int8.memory.key == "tflm_arena" and int8.ram_basis.startswith("TFLM arena")
    logmel = student.frontend(audio)
    body = footprint(Network(student).eval(), logmel, nrf52840, "int8", input_name="logmel")
    # with its front-end no student fits: the 1 s STFT and its mel matmul need ~380 kB of arena whatever the body;
    # without it dscnn fits (114 kB; benchmarks/search.py measures every preset)
    assert not int8.fits and "ram" in {c.name for c in int8.violations}
    assert body.ram_bytes < int8.ram_bytes and body.fits
