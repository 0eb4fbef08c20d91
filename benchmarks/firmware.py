"""Students as firmware (`edgekd deploy --build`): flash, RAM and instructions per inference measured from the linked
image running under QEMU, for the distilled demo student (INT8 with its log-mel in C, FP32 beside it, FP32 with the
front-end in the model), the students `edgekd search` chose for nrf52840 and stm32h7 (benchmarks/results/search.json)
and a network of MLPerf Tiny's keyword-spotting DS-CNN shape, whose published latencies calibrate the cycles per
instruction of each core. Needs the tflite extra, arm-none-eabi-gcc, qemu-system-arm and the sources of
../shared/third_party (see README: Firmware).

    python benchmarks/firmware.py [--run runs/readme-demo/runs/demo] [--windows 100]

Random (seeded) weights for the search's students and the DS-CNN: flash, RAM and instructions depend on shapes and
dtypes, not on the weights. The published latencies (MLPerf Tiny v1.0 closed division, the TFLM reference
submission) are of the real DS-CNN on NUCLEO-L4R5ZI (Cortex-M4, 120 MHz) and NUCLEO-H7A3ZI-Q (Cortex-M7, 280 MHz).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from results import ROOT, save
from torch import nn

from edgekd.firmware.result import latency_ms
from edgekd.firmware.toolchain import CORES
from edgekd.formats.tflite.export import convert_tflite, quantize_tflite
from edgekd.recipe import load_recipe
from edgekd.runtime import seeded
from edgekd.stages.deploy import deploy
from edgekd.stages.search import Candidate
from edgekd.students import build_student
from edgekd.students.base import Network

THIRD_PARTY = ROOT.parent / "shared" / "third_party"
# MLPerf Tiny's KWS DS-CNN, as published: latency (ms), the board's core and clock (MHz).
PUBLISHED = {"cortex-m4": (72.7, 120.0, "NUCLEO-L4R5ZI"), "cortex-m7": (16.4, 280.0, "NUCLEO-H7A3ZI-Q")}
CORE_DEVICE = {"cortex-m4": "stm32l4r5", "cortex-m7": "stm32h7"}


class KwsDsCnn(nn.Module):
    """MLPerf Tiny's keyword-spotting DS-CNN (mlcommons/tiny, ds_cnn): 49×10 MFCC in; a 10×4 convolution of stride
    2 ('same' padding), four depthwise-separable blocks of 64 channels, average pooling, 12 classes, softmax."""

    def __init__(self):
        super().__init__()

        def block(layer: nn.Module, channels: int) -> list[nn.Module]:
            return [layer, nn.BatchNorm2d(channels), nn.ReLU()]

        layers = [nn.ZeroPad2d((1, 1, 4, 5)), *block(nn.Conv2d(1, 64, (10, 4), stride=2), 64)]
        for _ in range(4):
            layers += block(nn.Conv2d(64, 64, 3, padding=1, groups=64), 64) + block(nn.Conv2d(64, 64, 1), 64)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(64, 12)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.head(self.body(mfcc[:, None]).mean(dim=(2, 3))), dim=1)


def _tflite(module: nn.Module, calibration: np.ndarray, folder: Path, name: str) -> Path:
    """`module` as a full-integer .tflite, alone in its folder (no export.json: deployed as a tensor-in model)."""
    (folder / name).mkdir()
    with tempfile.TemporaryDirectory() as fp32_folder:
        fp32 = convert_tflite(module.eval(), torch.from_numpy(calibration[:1]), Path(fp32_folder) / "fp32.tflite")
        return quantize_tflite(fp32, folder / name / f"{name}.int8.tflite", calibration)


def _searched(folder: Path, dim: int) -> list[tuple[str, Path, str]]:
    """The student each search chose, its network alone at INT8 (the search proves INT8 with the front-end out)."""
    chosen = json.loads((ROOT / "benchmarks" / "results" / "search.json").read_text())["results"]["devices"]
    models = []
    for device, found in chosen.items():
        candidate = Candidate(**found["searches"]["validation"]["chosen"]["candidate"])
        with seeded(0):
            student = build_student(candidate.student(), dim).eval()
        samples = student.frontend.spec.sample_rate  # one-second windows
        audio = torch.from_numpy(np.random.default_rng(0).standard_normal((16, samples)).astype(np.float32) * 0.1)
        with torch.no_grad():
            logmel = student.frontend(audio).numpy()
        models.append((f"search's choice for {device}: {candidate.name}",
                       _tflite(Network(student), logmel, folder, f"search-{device}"), device))
    return models


def _row(name: str, device: str, result, precision: str) -> dict:
    measured = result.measured
    row = {"model": name, "device": device, "core": result.core, "clock_mhz": result.clock_mhz,
           "precision": precision, "input": result.input, "model_bytes": result.model_bytes,
           "flash": measured.flash, "ram": measured.ram, "stack": measured.stack, "arena_used": measured.arena_used,
           "arena_tflm_x86": result.tflm_x86_arena, "frontend_instructions": measured.frontend_instructions,
           "network_instructions": measured.network_instructions, "outputs_identical": measured.outputs_identical,
           "windows": measured.windows, "output_max_abs_diff": measured.output_max_abs_diff,
           "frontend_max_db_diff": measured.frontend_max_db_diff, "frontend_min_cosine": measured.frontend_min_cosine}
    print(f"{name:58s} {device:10s} {precision:5s} flash {measured.flash:>9,d} B  RAM {measured.ram:>8,d} B  "
          f"front-end {measured.frontend_instructions:>11,d}  network {measured.network_instructions:>12,d} instr  "
          f"identical {measured.outputs_identical}/{measured.windows}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/readme-demo/runs/demo"), help="a distilled demo run")
    parser.add_argument("--windows", type=int, default=100, help="held-out windows per firmware")
    args = parser.parse_args()
    if not (args.run / "student.pt").is_file():
        raise SystemExit(f"{args.run}: no distilled run; run `edgekd distill demo --out {args.run}` or give --run")
    demo = load_recipe(ROOT / "recipes" / "demo.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, device, frontend, precision in (
                ("demo student, log-mel in C", "nrf52840", "exclude", "int8"),
                ("demo student, log-mel in C", "stm32h7", "exclude", "int8"),
                ("demo student, log-mel in C", "nrf52840", "exclude", "fp32"),
                ("demo student, front-end in the model", "stm32h7", "include", "fp32")):
            result = deploy(args.run, device, folder / f"{device}-{frontend}-{precision}", True, args.windows,
                            frontend, precision, THIRD_PARTY)
            rows.append(_row(name, device, result, precision))
        for name, model, device in _searched(folder, demo.reduction.dim):
            rows.append(_row(name, device, deploy(model, device, folder / f"{model.stem}-fw", True, 8, "exclude",
                                                  "int8", THIRD_PARTY), "int8"))
        with seeded(0):
            kws = KwsDsCnn()
        mfcc = np.random.default_rng(0).standard_normal((16, 49, 10)).astype(np.float32) * 10
        kws_file = _tflite(kws, mfcc, folder, "kws-ds-cnn")
        calibration = {}
        for core, device in CORE_DEVICE.items():
            result = deploy(kws_file, device, folder / f"kws-{core}", True, 8, "exclude", "int8", THIRD_PARTY)
            rows.append(_row("KWS DS-CNN shape (MLPerf Tiny)", device, result, "int8"))
            published_ms, clock, board = PUBLISHED[core]
            instructions = result.measured.network_instructions
            calibration[core] = {"board": board, "clock_mhz": clock, "published_ms": published_ms,
                                 "instructions": instructions,
                                 "cycles_per_instruction": published_ms * clock * 1e3 / instructions,
                                 "in_use": CORES[next(cpu for cpu, c in CORES.items() if c.name == core)].cpi}
            print(f"{core}: {instructions:,} instructions per KWS DS-CNN inference; {published_ms} ms at {clock:g} "
                  f"MHz on {board} → {calibration[core]['cycles_per_instruction']:.3f} cycles per instruction "
                  f"(edgekd uses {calibration[core]['in_use']:g})", flush=True)
        kws_bytes = kws_file.stat().st_size
    for row in rows:  # the latency every row would have at its device's clock, with the cycles just calibrated
        cpi = calibration[row["core"]]["cycles_per_instruction"]
        row["latency_ms"] = latency_ms(row["frontend_instructions"] + row["network_instructions"], cpi, row["clock_mhz"])
    save("firmware", args, {"rows": rows, "calibration": calibration, "kws_tflite_bytes": kws_bytes}, "firmware.py")


if __name__ == "__main__":
    main()
