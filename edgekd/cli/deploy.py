"""`edgekd deploy`: the student as a TFLite Micro library for a device's core, and with --build as firmware run under
QEMU with its flash, RAM and instructions measured."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import typer

from edgekd.cli.base import a_folder, app, console, err_console, user_errors
from edgekd.configs import FrontendPlacement
from edgekd.firmware.toolchain import THIRD_PARTY_ENV


@app.command()
@user_errors
def deploy(
    source: Path = typer.Argument(..., help="run directory, `edgekd export --format tflite` folder, or its .tflite"),
    device: str = typer.Option(..., "--device", "-d", help="device name (see `edgekd devices`) or YAML"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=a_folder,
                                      help="library folder \\[default: RUN_DIR/deploy/DEVICE]"),
    build: bool = typer.Option(False, "--build", help="compile it with TFLM and CMSIS-NN for the device's core, run "
                               "it under QEMU on held-out windows, measure flash, RAM and instructions"),
    windows: int = typer.Option(100, min=1, help="held-out windows the firmware runs on"),
    frontend: FrontendPlacement = typer.Option("exclude", help="exclude: the log-mel in C on the device, the model "
                                               "INT8; include: the model computes it (FP32)"),
    precision: Optional[Literal["int8", "int16x8", "fp32"]] = typer.Option(
        None, help="the model's precision (int16x8: int8 weights, int16 activations) \\[default: int8 with --frontend "
        "exclude, fp32 with include]"),
    third_party: Optional[Path] = typer.Option(None, help=f"folder of the TFLM, CMSIS-NN, CMSIS-DSP and CMSIS-Core "
                                               f"sources \\[default: ${THIRD_PARTY_ENV}]"),
):
    """Write the student as a C/C++ library for the device's core; with --build, run it as firmware under QEMU and
    compare it with the host; exit 1 if the firmware exceeds the device's flash or RAM."""
    from edgekd.render.tables import deploy_table
    from edgekd.stages.deploy import deploy as deploy_stage

    with err_console.status("generating the library" + (", building and running the firmware" if build else "")):
        result = deploy_stage(source, device, out, build, windows, frontend,
                              precision or ("int8" if frontend == "exclude" else "fp32"), third_party)
    console.print(deploy_table(result))
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(f"wrote {result.folder}", markup=False)
