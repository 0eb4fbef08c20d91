"""`edgekd profile` (one model file against a device or budgets) and `edgekd check` (every model × device of a CI
config), rendered the same way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgekd.cli.base import (
    app,
    console,
    err_console,
    report_line,
    user_errors,
)
from edgekd.errors import EXIT_OK, EXIT_VIOLATION


@app.command()
@user_errors
def profile(
    model: Path = typer.Argument(..., help="model file: .onnx, .tflite (TFLite Micro) or .pte (ExecuTorch)"),
    device: Optional[str] = typer.Option(None, "--device", "-d", help="device name (see `edgekd devices`) or YAML"),
    max_flash: Optional[str] = typer.Option(None, help="storage budget, e.g. 512KB, 2MiB"),
    max_ram: Optional[str] = typer.Option(None, help="activation-memory budget, e.g. 256KB"),
    max_macs: Optional[float] = typer.Option(None, help="MAC budget per inference, e.g. 2e7"),
    max_latency_ms: Optional[float] = typer.Option(None, help="median latency budget on this host"),
    runs: int = typer.Option(20, min=0, help="timed runs for latency (0 skips latency and measured memory)"),
    raw: bool = typer.Option(False, "--raw", help="plan memory on the graph as exported, not onnxruntime's optimised one"),
    plot: Optional[Path] = typer.Option(None, help="write the memory timeline to this PNG"),
    junit: Optional[Path] = typer.Option(None, help="write one JUnit testcase per check to this XML file"),
    markdown: Optional[Path] = typer.Option(None, help="write a Markdown summary (for a pull-request comment)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object (stable contract, see README)"),
):
    """Storage, activation memory, MACs and latency of an ONNX model, or a .tflite or .pte with its runtime's own
    memory figures; exit 1 if it exceeds a budget."""
    from edgekd.profile import profile_model
    from edgekd.units import parse_size

    report = profile_model(
        model, device,
        max_flash=parse_size(max_flash, "--max-flash") if max_flash else None,
        max_ram=parse_size(max_ram, "--max-ram") if max_ram else None,
        max_macs=max_macs, max_latency_ms=max_latency_ms, latency_runs=runs, raw=raw,
    )
    render_reports([report], as_json, junit, markdown)
    if plot:
        from edgekd.render.ci import plot_timeline

        ram_limits = [c.limit for c in report.checks if c.name == "ram"]
        plot_timeline(report, plot, int(min(ram_limits)) if ram_limits else None)
        err_console.print(f"memory timeline written to {plot}", markup=False)
    raise typer.Exit(EXIT_OK if report.fits else EXIT_VIOLATION)


@app.command()
@user_errors
def check(
    config: Optional[Path] = typer.Argument(None, help="edgekd.yaml or pyproject.toml \\[default: found here]"),
    baseline: Optional[Path] = typer.Option(None, help="fail when a model grew more than allowed since this file"),
    write_baseline: Optional[Path] = typer.Option(None, help="record today's figures as a baseline"),
    runs: int = typer.Option(10, min=0, help="timed runs for latency (0 skips it)"),
    junit: Optional[Path] = typer.Option(None, help="write one JUnit testcase per check to this XML file"),
    markdown: Optional[Path] = typer.Option(None, help="write a Markdown summary (for a pull-request comment)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list of profile objects"),
):
    """Profile every model × device of a CI config; exit 1 if any budget or the growth gate fails."""
    from edgekd.profile.suite import load_suite, run_suite
    from edgekd.profile.suite import write_baseline as save_baseline

    path, suite = load_suite(config)
    reports = run_suite(suite, path.parent, runs, baseline)
    render_reports(reports, as_json, junit, markdown)
    if write_baseline:
        save_baseline(reports, write_baseline)
        err_console.print(f"baseline written to {write_baseline}", markup=False)
    failed = [r for r in reports if not r.fits]
    if not as_json:
        console.print(f"{len(reports) - len(failed)} of {len(reports)} model × device checks pass")
    raise typer.Exit(EXIT_VIOLATION if failed else EXIT_OK)


def render_reports(reports: list, as_json: bool, junit: Optional[Path], markdown: Optional[Path]) -> None:
    from edgekd.files import write_text
    from edgekd.render.ci import junit_xml
    from edgekd.render.ci import markdown as markdown_summary
    from edgekd.render.tables import profile_table, top_nodes_table

    if as_json:
        data = [r.to_json() for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    else:
        for report in reports:
            console.print(profile_table(report))
            console.print(top_nodes_table(report))
            if report.checks:
                verdict = "[green]fits[/]" if report.fits else "[red]does not fit[/]"
                console.print(f"verdict: {verdict}" + (f" {report.device}" if report.device else ""))
    for report in reports:
        for violation in report.violations:
            report_line(f"{report.model}: {violation.describe()}", "[red]over budget[/]")
    if junit:
        write_text(junit, junit_xml(reports))
    if markdown:
        write_text(markdown, markdown_summary(reports))
