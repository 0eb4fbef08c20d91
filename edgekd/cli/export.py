"""`edgekd export`: a run's student → the formats of edgekd/formats/, each verified at the accuracy gate."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from edgekd.cli.base import (
    a_folder,
    app,
    console,
    err_console,
    report_line,
    user_errors,
)
from edgekd.configs import FrontendPlacement
from edgekd.errors import EXIT_OK, EXIT_VIOLATION
from edgekd.extras import install_command
from edgekd.formats.options import (
    ActivationType,
    CalibrationMethod,
    CortexM,
    ExportOptions,
    FrontendConstants,
    Int8Mode,
)
from edgekd.formats.registry import FORMATS


def _formats_help() -> str:
    """Every format: what it writes, and the install command of the extra it needs."""
    return "comma-separated; " + "; ".join(
        f"{name}: {entry.description}" + (f" ({install_command(entry.extra)})" if entry.extra else "")
        for name, entry in FORMATS.items())


@app.command()
@user_errors
def export(
    run_dir: Path = typer.Argument(..., help="run directory written by `edgekd distill`"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=a_folder,
                                      help="output folder \\[default: RUN_DIR/export]"),
    int8: Int8Mode = typer.Option("static", help="INT8 quantisation"),
    fp16: bool = typer.Option(True, help="also write an FP16 model (for GPU-class devices)"),
    calib: int = typer.Option(64, min=1, help="domain windows used to calibrate INT8"),
    calib_method: CalibrationMethod = typer.Option("minmax", help="INT8 calibration"),
    activations: ActivationType = typer.Option("uint8", help="INT8 activation type"),
    frontend: FrontendPlacement = typer.Option("include", help="include: the model takes raw audio; exclude: it "
                                               "takes log-mel"),
    frontend_constants: FrontendConstants = typer.Option("int8", help="INT8 file: store the DFT/mel int8 (less "
                                                         "flash, more RAM at run time) or fp32"),
    opset: int = typer.Option(ExportOptions.opset, min=17, help="ONNX opset"),
    min_cosine: float = typer.Option(0.99, help="gate: least mean embedding cosine to FP32 PyTorch"),
    max_accuracy_drop: float = typer.Option(1.0, help="gate: most probe-accuracy points lost vs FP32"),
    fallback: bool = typer.Option(True, help="keep the most sensitive layers FP32 when INT8 misses the gate"),
    formats: str = typer.Option("onnx", "--format", help=escape(_formats_help())),
    int8_output: bool = typer.Option(False, help="INT8 .tflite: int8 output (one scale for the embedding) instead of "
                                     "FP32"),
    cortex_m: CortexM = typer.Option("M4", help="INT8 .pte: the Cortex-M core its CMSIS-NN kernels target"),
    int16x8: bool = typer.Option(False, "--int16x8", help="also write int8-weight, int16-activation files (.tflite "
                                 "for TFLM's 16x8 kernels, .onnx)"),
    device: Optional[str] = typer.Option(None, help="when INT8 misses the gate, choose each layer's precision "
                                         "(int8, int16 activations, FP32) within this device's flash and RAM"),
    qat_epochs: Optional[int] = typer.Option(None, help="first fine-tune the run with quantisation-aware training "
                                             "for this many epochs (a run of its own in OUT/qat; the files quantise "
                                             "it)"),
    qat_lr: Optional[float] = typer.Option(None, help="its learning rate \\[default: the run's train.lr / 10]"),
):
    """Export the student to ONNX (FP32, INT8, FP16), TFLite Micro (FP32, INT8) and ExecuTorch (FP32, Cortex-M INT8),
    verify each against PyTorch; exit 1 if a gate fails."""
    from edgekd.render.tables import export_table
    from edgekd.stages.export import export_run

    options = ExportOptions(calib=calib, calib_method=calib_method, activations=activations, int8=int8, fp16=fp16,
                            frontend=frontend, frontend_constants=frontend_constants, opset=opset, min_cosine=min_cosine,
                            max_accuracy_drop=max_accuracy_drop, fallback=fallback,
                            formats=tuple(name.strip() for name in formats.split(",")), int8_output=int8_output,
                            cortex_m=cortex_m, int16x8=int16x8, device=device, qat_epochs=qat_epochs,
                            qat_lr=qat_lr)
    with err_console.status("exporting, quantising and verifying"):
        result = export_run(run_dir, out or run_dir / "export", options)
    console.print(export_table(result))
    for note in result.notes:
        report_line(note, "[yellow]note:[/]")
    for path in result.files:
        console.print(f"wrote {path}", markup=False)
    if not result.passed:
        report_line("; ".join(f"{v.file}: {', '.join(v.missed)}" for v in result.variants if not v.passed),
                    "[red]accuracy gate failed:[/]")
    raise typer.Exit(EXIT_OK if result.passed else EXIT_VIOLATION)
