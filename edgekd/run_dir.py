"""Everything that reads or writes a run directory:

recipe.yaml (the resolved recipe), checkpoint.pt (training state, for --resume), student.pt (the deployable
student), reduction.npz (the fitted φ), history.jsonl (one line per epoch), training_curves.png and metrics.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from torch import nn

from edgekd.distillation import MethodContext
from edgekd.errors import EdgekdError, first_line
from edgekd.files import atomic_save, atomic_write, load_weights, write_json, write_text
from edgekd.recipe import Recipe, recipe_from_dict, without_removed_keys
from edgekd.reduction import Reduction
from edgekd.schema import read_yaml
from edgekd.students import StudentConfig, build_student
from edgekd.trainer import EpochLog


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    recipe_file = property(lambda self: self.path / "recipe.yaml")
    checkpoint = property(lambda self: self.path / "checkpoint.pt")
    student_file = property(lambda self: self.path / "student.pt")
    qat_checkpoint = property(lambda self: self.path / "qat_checkpoint.pt")  # quantisation-aware fine-tuning's
    metrics_file = property(lambda self: self.path / "metrics.json")
    history_file = property(lambda self: self.path / "history.jsonl")
    reduction_file = property(lambda self: self.path / "reduction.npz")
    curves_file = property(lambda self: self.path / "training_curves.png")

    def recipe(self) -> Recipe:
        if not self.recipe_file.is_file():
            raise EdgekdError(f"{self.path}: not a run directory (no recipe.yaml); run `edgekd distill` first")
        return recipe_from_dict(without_removed_keys(read_yaml(self.recipe_file, "run recipe")), str(self.recipe_file))

    def has_run(self) -> bool:
        return any(path.exists() for path in (self.checkpoint, self.student_file, self.history_file,
                                              self.metrics_file))

    def check_claim(self, recipe: Recipe, resume: bool, force: bool) -> None:
        """Refuse, before any work: a run without --resume or --force, --resume of another recipe, and a folder of
        files edgekd did not write (they are never overwritten)."""
        if self.has_run() and not (resume or force):
            raise EdgekdError(f"{self.path} already holds a run: pass --resume to continue it or --force to start over")
        if resume and self.has_run() and self.recipe_file.is_file() and self.recipe().digest() != recipe.digest():
            raise EdgekdError(f"{self.path}: the recipe differs from the one this run started with; cannot --resume")
        if not self.has_run() and self.path.is_dir() and any(self.path.iterdir()):
            raise EdgekdError(f"{self.path}: the folder holds files that are not an edgekd run; give --out a new or "
                              "empty folder")

    def start(self, recipe: Recipe, resume: bool) -> None:
        """Write the resolved recipe (and, for a new run, an empty epoch log) once the run's inputs have loaded."""
        write_text(self.recipe_file, yaml.safe_dump(recipe.to_dict(), sort_keys=False))
        if not resume:
            write_text(self.history_file, "")

    @contextlib.contextmanager
    def removed_on_failure(self, active: bool):
        """Remove this folder if the block fails or is interrupted: for a new run before its first checkpoint,
        which would otherwise be left as a folder that needs --force."""
        try:
            yield
        except BaseException:
            if active:
                shutil.rmtree(self.path, ignore_errors=True)
            raise

    def staging(self) -> RunDir:
        """Where a forced run is built, so that the run it replaces stays whole until the new one has finished."""
        staging = RunDir(self.path.with_name(self.path.name + ".edgekd-new"))
        shutil.rmtree(staging.path, ignore_errors=True)
        return staging

    def replace_with(self, finished: RunDir) -> None:
        """Swap a finished run in for this one: rename, never copy, so the folder is always one whole run."""
        retired = self.path.with_name(self.path.name + ".edgekd-old")
        shutil.rmtree(retired, ignore_errors=True)
        os.replace(self.path, retired)
        os.replace(finished.path, self.path)
        shutil.rmtree(retired)

    def finished_metrics(self, recipe: Recipe) -> dict | None:
        """metrics.json of a run that finished with this very recipe, else None."""
        if self.metrics_file.is_file() and self.recipe_file.is_file() and self.recipe().digest() == recipe.digest():
            return json.loads(self.metrics_file.read_text())
        return None

    def append_epoch(self, log: EpochLog) -> None:
        """One JSON line per epoch as it ends; rewritten whole from the checkpoint's history at the end."""
        with open(self.history_file, "a") as handle:
            handle.write(json.dumps(asdict(log)) + "\n")

    def write_history(self, history: list[EpochLog]) -> None:
        write_text(self.history_file, "".join(json.dumps(asdict(h)) + "\n" for h in history))
        _plot_history(history, self.curves_file)

    def save_student(self, student: nn.Module, recipe: Recipe, head: nn.Module | None) -> None:
        atomic_write(self.student_file, lambda handle: torch.save(
            {"state_dict": student.state_dict(), "embedding_dim": student.embedding_dim,
             "student": recipe.student.model_dump(mode="json"),
             "head": head.state_dict() if head is not None else None}, handle))

    def load_student(self) -> tuple[nn.Module, Recipe]:
        """The deployed student (with whatever its methods ship inside it) and the recipe it was trained with."""
        recipe = self.recipe()
        if not self.student_file.is_file():
            raise EdgekdError(f"{self.path}: no student.pt; the distillation did not finish (continue it with "
                              "--resume)")
        saved = load_weights(self.student_file, "student")
        if not (isinstance(saved, dict) and {"state_dict", "embedding_dim"} <= saved.keys()):
            raise EdgekdError(f"{self.student_file}: not a student edgekd saved (no state_dict and embedding_dim); "
                              "run `edgekd distill` again (--force)")
        student = build_student(recipe.student, saved["embedding_dim"])
        for method in recipe.methods.build(method_context(recipe)):
            student = method.deployable(None, student, saved["state_dict"])
        try:
            student.load_state_dict(saved["state_dict"])
        except (RuntimeError, KeyError, TypeError) as err:  # another architecture's weights
            raise EdgekdError(f"{self.student_file}: does not match the student in {self.recipe_file} "
                              f"({first_line(err, 120)}); run `edgekd distill` again (--force)") from None
        return student.eval(), recipe

    def save_reduction(self, reduction: Reduction) -> None:
        atomic_write(self.reduction_file, reduction.save)

    def load_reduction(self) -> Reduction:
        if not self.reduction_file.is_file():
            raise EdgekdError(f"{self.path}: no reduction.npz; the distillation did not finish")
        try:
            reduction = Reduction.load(self.reduction_file)
        except Exception as err:  # numpy raises several types for truncated and foreign files
            raise EdgekdError(f"{self.reduction_file}: cannot read the reduction ({first_line(err)}); it is damaged: "
                              "run `edgekd distill` again (--force)") from None
        if not reduction.finite():  # every figure computed through it would be NaN
            raise EdgekdError(f"{self.reduction_file}: the reduction holds non-finite values; it is damaged: run "
                              "`edgekd distill` again (--force)")
        return reduction

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_file, metrics)

    def read_metrics(self) -> dict:
        return json.loads(self.metrics_file.read_text()) if self.metrics_file.is_file() else {}


def load_student(run_dir: Path) -> tuple[nn.Module, Recipe]:
    return RunDir(run_dir).load_student()


def method_context(recipe: Recipe) -> MethodContext:
    """What the recipe's methods are given: its seed, student and file, and this module's reader of other runs."""
    return MethodContext(recipe.seed, recipe.student, recipe.source, _student_of_run)


def _student_of_run(run_dir: Path) -> tuple[nn.Module, StudentConfig]:
    student, recipe = load_student(run_dir)
    return student, recipe.student


def _plot_history(history: list[EpochLog], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h.epoch for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [h.train_loss for h in history], label="train")
    left.plot(epochs, [h.val_loss for h in history], label="validation")
    left.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
    left.legend()
    if history[0].val_cosine is not None:
        right.plot(epochs, [h.val_cosine for h in history], color="tab:green", label="cosine to teacher")
    if history[0].val_accuracy is not None:
        right.plot(epochs, [h.val_accuracy for h in history], color="tab:purple", label="head accuracy")
    right.set(xlabel="epoch", title="validation")
    right.legend()
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
