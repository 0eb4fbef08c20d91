"""`edgekd distill`: a recipe → a run directory (the student, its reduction, metrics and curves)."""

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
    progress_bars,
    user_errors,
)


@app.command()
@user_errors
def distill(
    recipe: str = typer.Argument(..., help="recipe file or shipped recipe name (see `edgekd recipes`)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", callback=a_folder,
                                      help="run directory \\[default: runs/<recipe name>]"),
    resume: bool = typer.Option(False, help="continue an interrupted run from its last checkpoint"),
    force: bool = typer.Option(False, help="start over in a run directory that already holds a run"),
    strict: bool = typer.Option(False, help="stop at the first unusable audio file instead of skipping it"),
):
    """Train a small student to approximate the teacher on the recipe's domain data."""
    from edgekd.recipe import load_recipe

    loaded = load_recipe(recipe)  # a bad recipe is answered before the stage (and torch) is imported

    from edgekd.render.tables import distill_table
    from edgekd.stages.distill import Hooks
    from edgekd.stages.distill import distill as run_distill

    run_dir = out or Path("runs") / loaded.name
    with progress_bars() as progress:
        tasks: dict[str, int] = {}

        logged = {"teacher": -1}  # off a terminal the bars are not drawn: a log line per tenth instead

        def teacher_progress(done: int, total: int) -> None:
            if "teacher" not in tasks:
                tasks["teacher"] = progress.add_task("teacher inference (windows)", total=total, status="")
            progress.update(tasks["teacher"], completed=done)
            tenth = done * 10 // max(total, 1)
            if not err_console.is_terminal and tenth > logged["teacher"]:
                logged["teacher"] = tenth
                progress.console.print(f"· teacher inference: {done:,}/{total:,} windows", markup=False)

        def step(epoch: int, done: int, total: int) -> None:
            if "train" not in tasks:
                tasks["train"] = progress.add_task("training (epochs)", total=loaded.train.epochs, status="")
            progress.update(tasks["train"], completed=epoch + done / total)

        def epoch(log) -> None:
            step(log.epoch - 1, 1, 1)
            score = (f"val cosine {log.val_cosine:.3f}" if log.val_cosine is not None else "") + (
                f"  val head accuracy {log.val_accuracy:.1%}" if log.val_accuracy is not None else "")
            progress.update(tasks["train"], status=f"loss {log.train_loss:.4g}  {score}")
            if not err_console.is_terminal:
                progress.console.print(f"· epoch {log.epoch}/{loaded.train.epochs} ({log.seconds:.1f} s): loss "
                                       f"{log.train_loss:.4g}  {score}".rstrip(), markup=False)

        result = run_distill(
            loaded, run_dir, resume=resume, force=force, strict=strict,
            hooks=Hooks(stage=lambda text: progress.console.print(f"[dim]· {escape(text)}[/]"),
                        teacher_progress=teacher_progress, step=step, epoch=epoch),
        )
    if result.metrics is None:
        return  # a torchrun worker other than rank 0: rank 0 reports
    console.print(distill_table(result.metrics))
    console.print(f"run written to [bold]{escape(str(run_dir))}[/]: student.pt, reduction.npz, metrics.json, "
                  "training_curves.png")
    console.print(f"next: edgekd export {run_dir}", markup=False)
