"""Profile results in the forms CI systems and people read: JUnit XML, Markdown, and a memory-timeline plot."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from edgekd.files import atomic_save
from edgekd.units import format_bytes, format_count


def junit_xml(reports: list, suite: str = "edgekd") -> str:
    """One <testcase> per check of each report (JUnit XML as Jenkins, GitLab and GitHub reporters read it)."""
    cases = [(report, check) for report in reports for check in report.checks]
    failures = sum(not check.passed for _, check in cases)
    root = ET.Element("testsuites", name=suite, tests=str(len(cases)), failures=str(failures), errors="0")
    grouped: dict[str, list] = {}
    for report, check in cases:
        grouped.setdefault(f"{report.model} on {report.device or 'no device'}", []).append((report, check))
    for name, items in grouped.items():
        element = ET.SubElement(root, "testsuite", name=name, tests=str(len(items)),
                                failures=str(sum(not c.passed for _, c in items)), errors="0", skipped="0")
        for report, check in items:
            case = ET.SubElement(element, "testcase", classname=f"edgekd.{report.device or 'budget'}",
                                 name=f"{check.name} ({check.source})", time="0")
            if not check.passed:
                failure = ET.SubElement(case, "failure", message=check.describe(), type="BudgetExceeded")
                failure.text = check.describe()
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def markdown(reports: list) -> str:
    """A summary for a pull-request comment."""
    lines = ["| model | device | flash | RAM (peak) | MACs | latency | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in reports:
        latency = f"{r.latency_ms:.2f} ms" if r.latency_ms is not None else "—"
        verdict = "✅ fits" if r.fits else "❌ " + "; ".join(c.describe() for c in r.violations)
        lines.append(f"| `{r.model}` | {r.device or '—'} | {format_bytes(r.storage_bytes)} | "
                     f"{format_bytes(r.activation_bytes)} | {format_count(r.macs)} | {latency} | {verdict} |")
    return "\n".join(lines) + "\n"


def plot_timeline(report, path: Path, ram_budget: int | None = None) -> Path:
    """Bytes live at each node of the execution order, with the RAM budget drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report.plan.steps
    fig, ax = plt.subplots(figsize=(9, 3.5))
    ax.fill_between([s.index for s in steps], [s.live_bytes / 1e3 for s in steps], step="mid", alpha=0.4)
    ax.plot([s.index for s in steps], [s.live_bytes / 1e3 for s in steps], drawstyle="steps-mid", label="live")
    ax.axhline(report.arena_bytes / 1e3, color="tab:orange", linestyle=":", label="arena plan")
    if ram_budget:
        ax.axhline(ram_budget / 1e3, color="tab:red", linestyle="--", label="RAM budget")
    peak = max(steps, key=lambda s: s.live_bytes)
    ax.annotate(f"peak {format_bytes(peak.live_bytes)}\n{peak.op_type} {peak.name}", (peak.index, peak.live_bytes / 1e3),
                textcoords="offset points", xytext=(10, 8), fontsize=8)
    ax.set(xlabel="node (execution order)", ylabel="activation memory (kB)",
           title=f"memory timeline: {Path(report.model).name} ({report.graph} graph)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
