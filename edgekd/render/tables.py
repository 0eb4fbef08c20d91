"""Rich tables of the stages' results: the CLI renders these; the stages never print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rich.markup import escape
from rich.table import Table

from edgekd.units import format_bytes, format_count

if TYPE_CHECKING:  # the stages' results, rendered here; importing them would import torch
    from edgekd.data.domain import DataSummary
    from edgekd.firmware.result import DeployResult
    from edgekd.profile import ProfileReport
    from edgekd.stages.distill import DistillMetrics
    from edgekd.stages.evaluate import EvaluationReport
    from edgekd.stages.export import ExportResult
    from edgekd.stages.inventory import PresetSize
    from edgekd.stages.search import SearchResult
    from edgekd.stages.tune import TuneResult


def distill_table(metrics: DistillMetrics) -> Table:
    teacher, student = metrics.teacher, metrics.student
    table = Table(title=f"teacher vs student — {metrics.recipe}")
    table.add_column("")
    table.add_column(f"teacher ({teacher.name})", justify="right")
    table.add_column(f"student ({student.name})", justify="right")
    table.add_column("teacher / student", justify="right")

    def size_row(label: str, value, fmt, ratio: bool = True) -> None:
        # a precomputed or ONNX teacher has no sizes here: `edgekd profile` its file instead
        mine, theirs = value(student), value(teacher) if teacher.facts else None
        table.add_row(label, fmt(theirs) if theirs is not None else "—", fmt(mine),
                      f"{theirs / mine:.1f}x" if ratio and theirs is not None and mine else "")

    # the network's own parameters, as papers count them; a front-end's DFT and mel matrices apart (SEA-64's file:
    # 0.40 M of the one and 1.08 M of the other)
    size_row("parameters (network)", lambda n: n.facts.params - n.facts.frontend_params, format_count)
    if any(n.facts and n.facts.frontend_params for n in (teacher, student)):
        size_row("  front-end constants (DFT, mel)", lambda n: n.facts.frontend_params, format_count, ratio=False)
    size_row("storage (FP32 ONNX)", lambda n: n.facts.storage_bytes, format_bytes)
    size_row("activation memory (peak)", lambda n: n.facts.activation_bytes, format_bytes)
    size_row("MACs per window", lambda n: n.macs_per_window, format_count)
    if metrics.reduction is not None:
        reduction = metrics.reduction
        table.add_row("embedding dim", f"{teacher.dim} → {reduction['method'].upper()} {reduction['dim']}",
                      str(student.dim), "")
    for split, fid in (metrics.fidelity or {}).items():
        table.add_row(f"{split} fidelity cos / R² / CKA", "1 (reference)",
                      f"{fid.cosine:.3f} / {fid.r2:.3f} / {fid.cka:.3f}", "")
    if metrics.head is not None:
        head = metrics.head
        table.add_row("test head accuracy", f"{head['teacher_accuracy']:.1%}" if "teacher_accuracy" in head else "—",
                      f"{head['accuracy']:.1%}", "")
        if "top1_agreement" in head:
            table.add_row("  head fidelity (top-1 agreement / KL)", "",
                          f"{head['top1_agreement']:.1%} / {head['predictive_kl']:.3f}", "")
    if metrics.probe is not None:
        probe = metrics.probe
        auprc = metrics.probe_metric == "micro_auprc"
        fmt = "{:.3f}".format if auprc else "{:.1%}".format
        teacher_cell = f"{fmt(probe.teacher)} (PCA: {fmt(probe.teacher_reduced)})" if probe.teacher is not None \
            else "—"
        table.add_row(f"test probe {'micro-AUPRC' if auprc else 'accuracy'}", teacher_cell, fmt(probe.student), "")
        table.add_row("  log-mel statistics baseline", fmt(probe.logmel_baseline), "", "")
    return table


def tune_table(result: TuneResult) -> Table:
    table = Table(title=f"tuned KD — {result.recipe} (selected on {result.selected_on})")
    for column in ("T", "α", "val accuracy", "test accuracy", "top-1 agreement", "training s", ""):
        table.add_column(column, justify="right")
    for trial in result.trials:
        mark = "best" if trial == result.best else ("default" if trial == result.default else "")
        agreement = trial.top1_agreement
        table.add_row(f"{trial.temperature:g}", f"{trial.alpha:g}", f"{trial.val_accuracy:.1%}",
                      f"{trial.test_accuracy:.1%}", "—" if agreement is None else f"{agreement:.1%}",
                      f"{trial.training_seconds:.1f}", mark)
    return table


def search_table(result: SearchResult) -> Table:
    """Every candidate: trained ones as they were ranked, then those stopped early, then those that cannot fit."""
    table = Table(title=f"search — {result.recipe} for {result.device} at {result.precision} (budgets: flash "
                  f"{format_bytes(result.budgets['flash'])}, RAM {format_bytes(result.budgets['ram'])}; ranked on "
                  f"{result.ranked_on})")
    figures = ["val_cosine", "test_cosine", "test_cka"]
    if result.held_out_windows is not None:
        figures += ["held_out_cosine", "held_out_cka"]
    headers = {"val_cosine": "val cos", "test_cosine": "test cos", "test_cka": "test CKA",
               "held_out_cosine": f"held-out cos ({result.held_out_windows})", "held_out_cka": "held-out CKA"}
    for column in ("#", "candidate", "state", "flash", "RAM", "MACs", "host ms", "epochs",
                   *(headers[key] for key in figures), ""):
        table.add_column(column, justify="left" if column in ("candidate", "state", "") else "right")
    order = {state: index for index, state in enumerate(("trained", "stopped early", "does not fit", "failed"))}
    for trial in sorted(result.trials, key=lambda t: (order[t.state], -(t.rank or 0), t.number)):
        mark = (f"chosen{f' ({trial.rescue})' if trial.rescue else ''}" if trial.number == result.chosen else
                "Pareto" if trial.pareto else "")
        table.add_row(str(trial.number), trial.name, trial.state, _optional(trial.flash_bytes, format_bytes),
                      _optional(trial.ram_bytes, format_bytes), _optional(trial.macs, format_count),
                      _optional(trial.latency_ms, "{:.2f}".format), _optional(trial.epochs, str),
                      *(_optional(getattr(trial, key), "{:.3f}".format) for key in figures), mark)
    return table


def _optional(value: Any, form: Callable[[Any], str]) -> str:
    return "—" if value is None else form(value)


def evaluation_table(report: EvaluationReport) -> Table:
    columns = ({"in domain (test split)": report.in_domain}
               | {f"in domain: {Path(k).name}": v for k, v in report.held_out_in_domain.items()}
               | {f"out of domain: {Path(k).name}": v for k, v in report.out_of_domain.items()})
    table = Table(title=f"evaluation ({report.protocol} protocol): student beside teacher on held-out data")
    table.add_column("")
    for name in columns:
        table.add_column(name, justify="right")
    table.add_row("windows (fidelity on)", *(f"{c.windows:,} ({c.fidelity_windows:,})" for c in columns.values()))
    for key, label in (("cosine", "fidelity cosine"), ("r2", "fidelity R²"), ("cka", "linear CKA"), ("mse", "MSE")):
        table.add_row(label, *(f"{getattr(c.fidelity, key):.3f}" for c in columns.values()))

    def score(column, who: str, metric: str) -> str:
        if metric not in getattr(column, who):
            return "—"
        spread = column.std.get(who, {}).get(metric)
        return f"{getattr(column, who)[metric]:.3f}" + ("" if spread is None else f" ± {spread:.3f}")

    metrics = sorted({k for c in columns.values() for k in c.student if k != "mlp_hidden_layers"})
    for metric in metrics:
        for who, label in (("teacher", "teacher"), ("student", "student"), ("logmel_baseline", "log-mel")):
            if not any(getattr(c, who) for c in columns.values()):
                continue  # the log-mel baseline was not asked for
            table.add_row(f"{label} {metric.replace('_', ' ')}", *(score(c, who, metric) for c in columns.values()))
    table.add_row("labelled clips", *(f"{c.clips:,}" if c.rounds else "—" for c in columns.values()))
    table.add_row("probes", *(c.rounds or c.no_probe for c in columns.values()))
    return table


def export_table(result: ExportResult) -> Table:
    table = Table(title="export verified against FP32 PyTorch on held-out windows")
    columns = ["file", "precision", "size", "vs FP32", "max |Δ|", "mean cos", "p1 cos"]
    if result.reference_accuracy is not None:
        columns += ["probe acc", "lost (pts)"]  # accuracy points below FP32 PyTorch: + is worse
    arenas = any(v.memory for v in result.variants)
    if arenas:
        columns.append("runtime RAM")  # the runtime's own figure: TFLM's arena total, the buffers ExecuTorch planned
    columns.append("gate")
    for column in columns:
        table.add_column(column, justify="left" if column in ("file", "gate") else "right")
    fp32_size = result.variants[0].size_bytes
    for v in result.variants:
        row = [v.file, v.precision, format_bytes(v.size_bytes), f"{fp32_size / v.size_bytes:.2f}x",
               f"{v.max_abs_diff:.2e}", f"{v.mean_cosine:.5f}", f"{v.p1_cosine:.5f}"]
        if result.reference_accuracy is not None:
            row += [f"{v.accuracy:.1%}", f"{v.accuracy_drop:+.2f}"]
        if arenas:
            row.append(format_bytes(v.memory.total) if v.memory else "")
        row.append("[green]pass[/]" if v.passed else "[red]" + "; ".join(v.missed) + "[/]")
        table.add_row(*row)
    return table


def profile_table(report: ProfileReport) -> Table:
    table = Table(title=f"profile: {report.model} ({report.graph} graph)")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("", justify="left")
    budgets: dict[str, list] = {}
    for check in report.checks:
        budgets.setdefault(check.name, []).append(check)

    def budget_cells(name: str, fmt=format_bytes) -> tuple[str, str]:
        checks = budgets.get(name, [])
        if not checks:
            return "", ""
        ok = all(c.passed for c in checks)
        return fmt(min(c.limit for c in checks)), "[green]fits[/]" if ok else "[red]OVER[/]"

    dtypes = ", ".join(f"{k} {format_bytes(v)}" for k, v in report.bytes_by_dtype.items())
    table.add_row("parameters", format_count(report.params), "", "")
    if report.frontend_params:
        table.add_row("  network (without front-end constants)", format_count(report.params - report.frontend_params),
                      "", "")
        table.add_row("  front-end constants (DFT, mel)", f"{format_count(report.frontend_params)}, "
                      f"{format_bytes(report.frontend_bytes)}", "", "")
    firmware = report.graph == "firmware"  # an `edgekd deploy --build` folder: the linked image's own figures
    table.add_row("storage (flash): " + ("firmware image" if firmware else "file"), format_bytes(report.storage_bytes),
                  *budget_cells("flash"))
    if report.knowledge_base_bytes:
        table.add_row("  of which retrieval knowledge base", format_bytes(report.knowledge_base_bytes), "", "")
    table.add_row("  weights by dtype", dtypes, "", "")
    table.add_row("  zipped (compressed image)", format_bytes(report.zipped_bytes), "", "")
    table.add_row("MACs", format_count(report.macs), *budget_cells("macs", format_count))
    _memory_rows(table, report, budget_cells("ram"))
    if firmware:
        table.add_row("latency on the device (firmware's instructions)", f"{report.latency_ms:.2f} ms",
                      *budget_cells("latency", lambda v: f"{v:g} ms"))
    elif report.latency_ms is not None:
        table.add_row("latency on this host (median / p90)", f"{report.latency_ms:.3f} / {report.latency_p90_ms:.3f} ms",
                      *budget_cells("latency", lambda v: f"{v:g} ms"))
    if "ops" in budgets:
        table.add_row("operators unsupported by the runtime", str(len(report.unsupported)), "0", budget_cells("ops")[1])
    for check in budgets.get("dtypes", []):
        table.add_row("dtypes the device cannot compute", check.detail or "none", "", budget_cells("dtypes")[1])
    return table


def _memory_rows(table: Table, report: ProfileReport, ram_cells: tuple[str, str]) -> None:
    """Activation memory, smallest to largest claim, and the runtime's measured or predicted arena beside it: the
    RAM budget cells go on the figure the budget judges."""
    table.add_row("activation memory (RAM): peak live", format_bytes(report.activation_bytes),
                  *(ram_cells if report.memory is None else ("", "")))
    if report.constant_ram_bytes:
        table.add_row("  of which constants expanded in RAM", format_bytes(report.constant_ram_bytes), "",
                      "[dim]e.g. int8-stored weights dequantised[/]")
    table.add_row("  1. largest single tensor", format_bytes(report.largest_tensor_bytes), "",
                  "[dim]what papers report[/]")
    table.add_row("  2. largest node working set", format_bytes(report.working_set_bytes), "",
                  "[dim]inputs+outputs of one node[/]")
    table.add_row("  3. peak live over execution order", format_bytes(report.activation_bytes), "",
                  "[dim]freed after last use[/]")
    table.add_row("  4. arena, greedy-by-size offsets", format_bytes(report.arena_bytes), "",
                  f"[dim]TFLM-style plan, fragmentation {report.fragmentation:.1%}[/]")
    if report.measured_peak_bytes is not None:
        table.add_row("  onnxruntime arena in use (measured)", format_bytes(report.measured_peak_bytes), "",
                      "[dim]x86 kernels, scratch included[/]")
    if report.memory is not None:
        table.add_row(report.memory.title, format_bytes(report.memory.total), *ram_cells)
        for part, size in report.memory.parts:
            table.add_row(part, format_bytes(size), "", "")


def top_nodes_table(report: ProfileReport) -> Table:
    table = Table(title="top nodes")
    for column in ("by memory (live bytes)", "", "by MACs", ""):
        table.add_column(column)
    memory, macs = report.top_memory, report.top_macs
    for i in range(max(len(memory), len(macs))):
        m = memory[i] if i < len(memory) else None
        c = macs[i] if i < len(macs) else None
        table.add_row(f"{m['op']} {m['node']}" if m else "", format_bytes(m["live_bytes"]) if m else "",
                      f"{c['op']} {c['node']}" if c else "", format_count(c["macs"]) if c else "")
    return table


def listing(title: str, records: list[dict], columns: dict[str, str],
            formats: dict[str, Callable[[Any], str]] | None = None) -> Table:
    """A table of `records` (what `--json` prints), one column per key of `columns` (key → header), each value
    shown by its formatter or as text. Readable at 80 columns: names (the first column) and figures are never cut,
    text columns wrap, folding a word only when it is wider than its column."""
    formats = formats or {}
    cells = [[formats.get(key, _text)(record[key]) for key in columns] for record in records]
    table = Table(title=title, pad_edge=False)
    for index, (key, header) in enumerate(columns.items()):
        texts = [row[index] for row in cells]
        if index == 0 or key in formats or all(isinstance(r[key], (int, float)) for r in records):
            # names and figures ("835.58 kB") stay whole; text columns give way
            table.add_column(header, no_wrap=True, min_width=max(map(len, [*texts, header])))
        else:
            table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def _text(value: Any) -> str:
    """A value as the cell's text, its brackets escaped (`edgekd[tflite]` is not rich markup)."""
    if isinstance(value, (list, tuple)):
        return escape(", ".join(str(item) for item in value))
    return "" if value is None else escape(str(value))


def data_table(summary: DataSummary, shown: int = 10) -> Table:
    """`edgekd data build|info`: the recipe's data in the audio store, and the files left out with why."""
    windows = ", ".join(f"{count:,} {split}" for split, count in summary.windows.items())
    rows = [("clips", f"{summary.clips:,}"), ("hours", f"{summary.hours:.3f}"), ("windows", windows)]
    rows += [(f"store at {store['rate']} Hz", f"{format_bytes(store['bytes'])} in {store['directory']}")
             for store in summary.stores]
    rows += [(f"skipped: {reason}", f"{count:,}") for reason, count in summary.skipped_by_reason.items()]
    rows += [("  " + entry["path"], entry["reason"]) for entry in summary.skipped[:shown]]
    if len(summary.skipped) > shown:
        rows.append(("  …", f"{len(summary.skipped) - shown:,} more (--json lists them all)"))
    return listing("domain data", [{"what": what, "value": value} for what, value in rows], {"what": "", "value": ""})


def presets_table(sizes: list[PresetSize], sample_rate: int, seconds: float) -> Table:
    records = [{"preset": s.preset, "family": s.family, "dim": s.dim, "params": s.trainable_parameters,
                "storage": s.network_storage_bytes, "peak": s.facts.activation_bytes, "macs": s.facts.macs}
               for s in sizes]
    return listing(f"presets ({sample_rate} Hz, {seconds:g} s windows, FP32): trainable parameters, storage "
                   "without the front-end's constants, peak activation memory", records,
                   {"preset": "preset", "family": "family", "dim": "dim", "params": "params", "storage": "storage",
                    "peak": "peak RAM", "macs": "MACs"},
                   {"params": format_count, "storage": format_bytes, "peak": format_bytes, "macs": format_count})


def deploy_table(result: DeployResult) -> Table:
    """The library's facts, and the firmware's figures beside edgekd's predictions when it was built and run."""
    table = Table(title=f"deploy: {result.model.name} as TFLite Micro firmware for {result.device} ({result.core})")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("beside", justify="left")
    table.add_row("operators", str(len(result.operators)), ", ".join(result.operators))
    table.add_row("arena in the library", format_bytes(result.arena_bytes),
                  f"TFLM on x86: {format_bytes(result.tflm_x86_arena)}")
    measured = result.measured
    if measured is None:
        table.add_row("firmware", "not built", "add --build to compile it and run it under QEMU")
        return table
    table.add_row(f"flash (of {format_bytes(result.budgets['flash'])})", format_bytes(measured.flash),
                  f"model file {format_bytes(result.model_bytes)}; text {format_bytes(measured.text)}, rodata "
                  f"{format_bytes(measured.rodata)}, data {format_bytes(measured.data)}")
    table.add_row(f"RAM (of {format_bytes(result.budgets['ram'])})", format_bytes(measured.ram),
                  f"data + bss {format_bytes(measured.data + measured.bss)} + stack {format_bytes(measured.stack)}; "
                  f"profile's figure: TFLM's arena on x86 {format_bytes(result.tflm_x86_arena)}")
    table.add_row("arena used on the core", format_bytes(measured.arena_used),
                  f"TFLM on x86: {format_bytes(result.tflm_x86_arena)}")
    table.add_row("outputs equal to TFLM on x86", f"{measured.outputs_identical}/{measured.windows}",
                  f"max |Δ| {measured.output_max_abs_diff:.2e}")
    if measured.frontend_max_db_diff is not None:
        table.add_row("C front-end vs PyTorch", f"{measured.frontend_max_db_diff:.2e} dB",
                      f"embedding cosine mean {measured.frontend_mean_cosine:.6f}, min "
                      f"{measured.frontend_min_cosine:.6f}")
        table.add_row("instructions: front-end", f"{measured.frontend_instructions:,}", f"{measured.frontend_ms:.2f} ms")
    table.add_row("instructions: network", f"{measured.network_instructions:,}", f"{measured.network_ms:.2f} ms")
    table.add_row(f"latency at {result.clock_mhz:g} MHz", f"{measured.latency_ms:.2f} ms",
                  f"{measured.cycles_per_instruction:g} cycles per instruction")
    return table
