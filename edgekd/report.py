"""Rich renderings of results: the CLI calls these, the stages never print."""

from __future__ import annotations

from rich.table import Table

from edgekd.units import format_bytes, format_count


def distill_table(metrics: dict) -> Table:
    teacher, student = metrics["teacher"], metrics["student"]
    table = Table(title=f"teacher vs student — {metrics['recipe']}")
    table.add_column("")
    table.add_column(f"teacher ({teacher['name']})", justify="right")
    table.add_column(f"student ({student['name']})", justify="right")
    table.add_column("teacher / student", justify="right")

    def size_row(label: str, key: str, fmt) -> None:
        # a precomputed or ONNX teacher has no sizes here: `edgekd profile` its file instead
        known = key in teacher and student[key]
        table.add_row(label, fmt(teacher[key]) if key in teacher else "—", fmt(student[key]),
                      f"{teacher[key] / student[key]:.1f}x" if known else "")

    size_row("parameters", "params", format_count)
    size_row("storage (FP32 ONNX)", "storage_bytes", format_bytes)
    size_row("activation memory (peak)", "activation_bytes", format_bytes)
    size_row("MACs per window", "macs_per_window", format_count)
    table.add_row("embedding dim", f"{teacher['dim']} → PCA {metrics['reduction']['dim']}", str(student["dim"]), "")
    for split in ("val", "test"):
        fid = metrics["fidelity"][split]
        table.add_row(f"{split} fidelity (cosine / R²)", "1 (reference)", f"{fid['cosine']:.3f} / {fid['r2']:.3f}", "")
    if "probe" in metrics:
        probe = metrics["probe"]
        auprc = metrics.get("probe_metric") == "micro_auprc"
        fmt = "{:.3f}".format if auprc else "{:.1%}".format
        table.add_row(f"test probe {'micro-AUPRC' if auprc else 'accuracy'}",
                      f"{fmt(probe['teacher'])} (PCA: {fmt(probe['teacher_reduced'])})", fmt(probe["student"]), "")
        table.add_row("  log-mel statistics baseline", fmt(probe["logmel_baseline"]), "", "")
    return table


def export_table(rows) -> Table:
    table = Table(title="export verified against PyTorch on held-out windows")
    for column in ("file", "precision", "size", "max |Δ|", "mean cosine", "min cosine"):
        table.add_column(column, justify="left" if column == "file" else "right")
    for row in rows:
        table.add_row(row.file, row.precision, format_bytes(row.size_bytes), f"{row.max_abs_diff:.2e}",
                      f"{row.mean_cosine:.5f}", f"{row.min_cosine:.5f}")
    return table


def profile_table(report) -> Table:
    table = Table(title=f"profile: {report.model}")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("budget", justify="right")
    table.add_column("", justify="left")
    budgets = {}
    for check in report.checks:
        budgets.setdefault(check.name, []).append(check)

    def budget_cells(name: str) -> tuple[str, str]:
        checks = budgets.get(name, [])
        if not checks:
            return "", ""
        limit = min(c.limit for c in checks)
        ok = all(c.passed for c in checks)
        return format_bytes(limit), "[green]fits[/]" if ok else "[red]OVER[/]"

    table.add_row("parameters", format_count(report.params), "", "")
    table.add_row("storage (flash)", format_bytes(report.storage_bytes), *budget_cells("flash"))
    table.add_row("activation memory (RAM, peak live)", format_bytes(report.activation_bytes), *budget_cells("ram"))
    table.add_row("largest activation tensor", format_bytes(report.largest_tensor_bytes), "", "")
    table.add_row("MACs", format_count(report.macs), "", "")
    if report.latency_ms is not None:
        table.add_row("latency on this host (median / p90)", f"{report.latency_ms:.3f} / {report.latency_p90_ms:.3f} ms",
                      "", "")
    return table
