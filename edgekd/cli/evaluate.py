"""`edgekd evaluate`: a run's fidelity and downstream probes under the papers' protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekd.cli.base import (
    app,
    console,
    err_console,
    user_errors,
)
from edgekd.protocols import ProtocolName


@app.command()
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="run directory written by `edgekd distill`"),
    data: Optional[list[str]] = typer.Option(None, "--data", help="out-of-domain data: a folder of audio (labels "
                                             "from its labels.csv), a YAML with a data: section, or a recipe "
                                             "(repeatable)"),
    same_domain: Optional[list[str]] = typer.Option(None, "--same-domain", help="held-out data of the run's own "
                                                    "domain, given as --data is (repeatable)"),
    protocol: ProtocolName = typer.Option("window", help="how probes are trained and scored: window (every window), "
                                          "hear (clip = mean window embedding), sea (window MLP, clip = mean "
                                          "probability; 0.1 s hop); see the README"),
    logmel_baseline: bool = typer.Option(False, "--logmel-baseline", help="also probe the student front-end's "
                                         "log-mel statistics (a baseline any embedding should beat; about a third "
                                         "more probe fits)"),
):
    """Fidelity and downstream probes of a student beside its teacher (and a log-mel baseline when asked): on the
    run's test split, on held-out data of its domain, and out of domain."""
    from edgekd.render.tables import evaluation_table
    from edgekd.stages.evaluate import evaluate_run, report_path

    with err_console.status("embedding, probing") as status:
        def on_dataset(column: str) -> None:
            status.update(f"embedding, probing: {column}")
            if not err_console.is_terminal:  # the spinner is not drawn: a log line per column instead
                err_console.print(f"· evaluating {column}", markup=False)

        report = evaluate_run(run_dir, data or [], same_domain or [], protocol, on_dataset, logmel_baseline)
    console.print(evaluation_table(report))
    console.print(f"written to {report_path(run_dir, protocol)}", markup=False)
