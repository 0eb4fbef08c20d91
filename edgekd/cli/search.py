"""`edgekd search`: the student most faithful to the teacher that fits a device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgekd.cli.base import (
    a_folder,
    app,
    console,
    err_console,
    report_line,
    user_errors,
)
from edgekd.configs import Precision
from edgekd.errors import EXIT_OK, EXIT_VIOLATION
from edgekd.formats.options import ExportOptions
from edgekd.formats.registry import FORMATS


@app.command()
@user_errors
def search(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name (its search: section sets the space)"),
    device: str = typer.Option(..., "--device", "-d", help="device name (see `edgekd devices`) or YAML"),
    precision: Precision = typer.Option("int8", help="precision the candidates are measured and the chosen student "
                                        "exported at"),
    trials: Optional[int] = typer.Option(None, min=1, help="candidates to propose, those that cannot fit included "
                                         "\\[default: the recipe's search.trials, 24]"),
    hours: Optional[float] = typer.Option(None, min=0.001, help="stop proposing candidates after this long"),
    epochs: Optional[int] = typer.Option(None, min=1, help="most epochs per trained candidate \\[default: the "
                                         "recipe's]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=a_folder,
                                      help="folder \\[default: runs/<recipe name>-search-<device>]"),
    formats: Optional[str] = typer.Option(None, "--format", help=f"comma-separated formats the chosen student is "
                                          f"exported to, the last one profiled: {', '.join(FORMATS)} \\[default: the "
                                          f"one the device's runtime loads, e.g. tflite for TFLite Micro]"),
    rank_on: Optional[str] = typer.Option(None, "--rank-on", help="held-out audio of the domain, given as evaluate's "
                                          "--same-domain is: trained candidates are ranked by fidelity on every "
                                          "window of it \\[default: the recipe's validation split]"),
    as_json: bool = typer.Option(False, "--json", help="print search.json's object"),
):
    """Find the student most faithful to the teacher that fits a device: candidates measured before training, those
    that fit distilled (stopped early when they lag), the best exported and profiled; exit 1 if none fits."""
    from edgekd.profile.devices import load_device
    from edgekd.recipe import load_recipe

    loaded, target = load_recipe(recipe), load_device(device)

    from edgekd.render.plots import plot_pareto
    from edgekd.render.tables import search_table
    from edgekd.stages.search import search as run_search

    out_dir = out or Path("runs") / f"{loaded.name}-search-{target.name}"
    chosen = tuple(name.strip() for name in formats.split(",")) if formats else None
    options = ExportOptions(formats=chosen) if chosen else None  # checked before any work
    result = run_search(loaded, target, out_dir, precision, trials, hours, epochs, options and options.formats,
                        lambda line: err_console.print(f"· {line}", markup=False, highlight=False), rank_on)
    if result is None:  # a torchrun rank other than 0: rank 0 reports
        raise typer.Exit(EXIT_OK)
    plot = plot_pareto(result, out_dir / "search.png")
    if as_json:
        console.print_json(json.dumps(result.to_json()))
    else:
        console.print(search_table(result))
        for note in result.notes:
            report_line(note, "[yellow]note:[/]")
        console.print(f"{result.count('trained')} trained, {result.count('stopped early')} stopped early, "
                      f"{result.count('does not fit')} never trained (cannot fit), in {result.seconds:.0f} s",
                      markup=False)
        for path in (out_dir / "search.json", plot, *([Path(result.export)] if result.export else [])):
            console.print(f"wrote {path}", markup=False)
    if not result.fits:
        report_line(f"{out_dir / 'search.json'}: no exported candidate fits {target.name}; widen the recipe's "
                     "search: space, lower the precision or give more --trials", "[red]does not fit:[/]")
    raise typer.Exit(EXIT_OK if result.fits else EXIT_VIOLATION)
