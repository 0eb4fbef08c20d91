"""`edgekd tune`: KD's temperature and hard-label weight searched on validation data."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekd.cli.base import (
    a_folder,
    app,
    console,
    progress_bars,
    user_errors,
)
from edgekd.errors import EdgekdError


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise EdgekdError(f"{option} takes comma-separated numbers, e.g. 1,2,4,8; got '{text}'") from None


@app.command()
@user_errors
def tune(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name"),
    temperature: str = typer.Option("1,2,4,8", help="temperatures T to try, comma-separated"),
    alpha: str = typer.Option("0.1,0.5,0.9", help="hard-label weights α to try, comma-separated"),
    epochs: Optional[int] = typer.Option(None, min=1, help="training epochs per trial \\[default: the recipe's]"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=a_folder,
                                      help="folder \\[default: runs/<recipe name>-tune]"),
):
    """Search KD's temperature and hard-label weight on validation data; writes a tuned recipe."""
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)

    from edgekd.render.tables import tune_table
    from edgekd.stages.tune import tune_kd

    out_dir = out or Path("runs") / f"{loaded.name}-tune"
    temperatures, alphas = _numbers(temperature, "--temperature"), _numbers(alpha, "--alpha")
    with progress_bars() as progress:
        task = progress.add_task("KD grid (trials)", total=len(temperatures) * len(alphas), status="")

        def on_trial(done: int, total: int, trial) -> None:
            progress.update(task, completed=done, status=f"T {trial.temperature:g} α {trial.alpha:g}: "
                            f"val accuracy {trial.val_accuracy:.1%}")

        result = tune_kd(loaded, out_dir, temperatures, alphas, epochs, on_trial)
    console.print(tune_table(result))
    console.print(f"tuned recipe: {result.tuned_recipe} (edgekd distill {result.tuned_recipe})", markup=False)
