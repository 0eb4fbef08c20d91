"""`edgekd export`: a run's student → ONNX FP32, INT8 and FP16 files, each verified against PyTorch and held to an
accuracy gate (embedding cosine, and downstream probe accuracy when the data has labels).

The fitted reduction is not part of the exported model: the student already outputs the reduced space.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from edgekd import __version__
from edgekd.configs import QatConfig
from edgekd.data.domain import load_domain_data
from edgekd.data.windows import labelled
from edgekd.errors import EdgekdError
from edgekd.extras import check_installed
from edgekd.files import alive, check_writable, signals_deferred, write_json, writing
from edgekd.formats.base import DeviceBudget, ExportJob, Variant, format_named
from edgekd.formats.options import ExportOptions
from edgekd.formats.registry import FORMATS
from edgekd.metrics import cosine_rows, fit_probe, score_probe
from edgekd.profile.devices import DeviceProfile, load_device
from edgekd.recipe import Recipe
from edgekd.run_dir import RunDir
from edgekd.stages.distill import quantisation_aware_run
from edgekd.students import StudentConfig
from edgekd.students.base import Network
from edgekd.supervision import LogMel
from edgekd.teachers.base import portable_description
from edgekd.trainer import predict

# Where models that miss their accuracy gate are kept (to inspect), away from the names a deployment picks up.
REJECTED = "rejected"
GATE_WINDOWS = 4096  # held-out windows the gate runs each variant on, at most
_STAGING = ".edgekd-export-"  # + the exporting process id: where files are written and verified before publishing
QAT_RUN = "qat"  # --qat-epochs: the run fine-tuned with quantisation-aware training, in the export folder


@dataclass
class ExportResult:
    files: list[Path]
    variants: list[Variant]
    reference_accuracy: float | None
    fp32_layers: list[str] = field(default_factory=list)  # kept FP32 by the mixed-precision fallback
    notes: list[str] = field(default_factory=list)
    layer_precision: dict[str, dict[str, str]] = field(default_factory=dict)  # file → {layer: precision not int8}

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.variants)


class _Gate:
    """Embedding cosine against FP32 PyTorch, and the probe accuracy a downstream classifier keeps."""

    def __init__(self, inputs: np.ndarray, reference: np.ndarray, probe, labels: np.ndarray | None,
                 options: ExportOptions):
        self.inputs, self.reference, self.probe, self.labels, self.options = inputs, reference, probe, labels, options
        self.scored = labelled(labels) if labels is not None else None  # the probe scores labelled windows only
        self.reference_accuracy = score_probe(probe, reference[self.scored], labels[self.scored]) \
            if probe is not None else None

    def score(self, path: Path, precision: str, out: np.ndarray) -> Variant:
        """The variant of `path`, given its outputs for the gate's windows."""
        cos = cosine_rows(out, self.reference)
        variant = Variant(path.name, precision, path.stat().st_size, float(np.abs(out - self.reference).max()),
                          float(cos.mean()), float(np.percentile(cos, 1)), float(cos.min()))
        if variant.mean_cosine < self.options.min_cosine:
            variant.missed.append(f"mean cosine {variant.mean_cosine:.4f} < {self.options.min_cosine}")
        if self.probe is not None:
            variant.accuracy = score_probe(self.probe, out[self.scored], self.labels[self.scored])
            variant.accuracy_drop = 100 * (self.reference_accuracy - variant.accuracy)
            if variant.accuracy_drop > self.options.max_accuracy_drop:
                variant.missed.append(f"probe drop {variant.accuracy_drop:.2f} points > "
                                      f"{self.options.max_accuracy_drop}")
        return variant


def export_run(run_dir: Path, out_dir: Path, options: ExportOptions | None = None,
               budget: DeviceBudget | None = None) -> ExportResult:
    """Every file is written and verified in a staging folder, then published: models that pass their gate under
    their final names, models that miss it under rejected/, export.json last, so that export.json always describes
    exactly the files beside it and a failed or killed export leaves the previous one as it was."""
    options = options or ExportOptions()
    for name in options.formats:
        if FORMATS[name].extra:
            check_installed(FORMATS[name].extra, f"--format {name}")
    budget = budget or (budget_of(_device(options.device)) if options.device else None)
    run, student, recipe, qat = _run_to_export(run_dir, out_dir, options)
    data = load_domain_data(recipe.domain(), None, recipe.student.sample_rate)
    windows, audio = data.windows, data.student_audio
    # The gate judges held-out windows (validation and test): more windows than the test split alone, so that one
    # flipped prediction is not mistaken for a lost point of accuracy; at most GATE_WINDOWS of them, spread evenly,
    # so an export of a model distilled on hundreds of hours takes minutes and bounded memory.
    train = windows.split_index("train")
    test = _spread(np.concatenate([windows.split_index("val"), windows.split_index("test")]), GATE_WINDOWS)
    calib_rows = _spread(train, options.calib)  # spread over the training split so every class is seen
    logmel = LogMel(student.frontend, audio).__getitem__
    if options.frontend == "include":
        module, input_name = student, "audio"
        inputs = audio.__getitem__
    else:
        module, input_name = Network(student), "logmel"
        inputs = logmel
    calib = inputs(calib_rows)
    probe_train = windows.labelled_rows(train)
    probe = fit_probe(predict(student, audio, probe_train).numpy(), windows.labels[probe_train], recipe.probe,
                      recipe.seed) if len(probe_train) and len(windows.labelled_rows(test)) else None
    gate = _Gate(inputs(test), predict(student, audio, test).numpy(), probe, windows.labels[test] if probe else None,
                 options)

    @functools.cache
    def network_inputs() -> tuple[np.ndarray, np.ndarray]:
        """Calibration and gate windows for the student after its front-end (what MCU files take): read as log-mel
        only when asked, and once."""
        return (calib, gate.inputs) if options.frontend == "exclude" else (logmel(calib_rows), logmel(test))

    metadata = _metadata(student, recipe, options, run.read_metrics())
    _remove_stale_staging(out_dir)
    with tempfile.TemporaryDirectory(prefix=f"{_STAGING}{os.getpid()}-", dir=out_dir) as staging:
        job = ExportJob(module, input_name, calib, network_inputs, Path(staging), gate, options, metadata,
                        budget=budget, notes=[f"the files quantise {run.path}: the run fine-tuned with quantisation-"
                                              f"aware training for {qat['epochs']} epoch(s)"] if qat else [])
        for name in FORMATS:  # in the registry's order, whatever order --format lists them in
            if name in options.formats:
                format_named(name).export(job)
        result = ExportResult(job.files, job.variants, gate.reference_accuracy, job.fp32_layers, job.notes,
                              job.layer_precision)
        _publish(result, out_dir, {"options": asdict(options), "budget": asdict(budget) if budget else None,
                                   "qat": qat,
                                   "calibration_windows": len(calib),
                                   "held_out_windows": len(test), "metadata": metadata})
    return result


def _run_to_export(run_dir: Path, out_dir: Path, options: ExportOptions) -> tuple[RunDir, nn.Module, Recipe,
                                                                                 dict | None]:
    """The run whose student the files quantise, its student and recipe, checked before any work: `run_dir`'s, or
    with --qat-epochs that run fine-tuned with quantisation-aware training, a run of its own beside the files."""
    run = RunDir(run_dir)
    student, recipe = run.load_student()
    _check_formats(options, recipe.student)
    check_writable(out_dir / "export.json")
    if not options.qat_epochs:
        return run, student, recipe, None
    tuned = quantisation_aware_run(run_dir, QatConfig(epochs=options.qat_epochs, lr=options.qat_lr),
                                   out_dir / QAT_RUN, "--qat-epochs")
    run = RunDir(tuned.run_dir)
    return run, *run.load_student(), {"run": QAT_RUN, **tuned.metrics.training.qat}


def _device(name_or_path: str) -> DeviceProfile:
    """--device's profile, read before any work."""
    try:
        return load_device(name_or_path)
    except EdgekdError as err:
        raise EdgekdError(f"--device {name_or_path}: {err}") from None


def budget_of(device: DeviceProfile) -> DeviceBudget:
    """What a mixed-precision file must still fit on the device."""
    return DeviceBudget(device.name, device.runtime, device.ram_budget, device.flash_budget, tuple(device.dtypes))


def _check_formats(options: ExportOptions, family: StudentConfig) -> None:
    """Before any work: the student's family exports to every format asked for, in INT8 too unless --int8 none."""
    refused = [name for name in options.formats if name not in family.formats]
    if refused:
        raise EdgekdError(f"--format {','.join(refused)}: a {family.name} student exports to "
                          f"{', '.join(family.formats)} only (see `edgekd students`)")
    fp32_only = [name for name in options.formats if name not in family.int8_formats]
    if fp32_only and options.int8 != "none":
        raise EdgekdError(f"--format {','.join(fp32_only)}: a {family.name} student exports to it in FP32 only (see "
                          f"`edgekd students`); add --int8 none, or export it separately")


def _spread(rows: np.ndarray, most: int) -> np.ndarray:
    """At most `most` of `rows`, evenly spaced (all of them when there are fewer)."""
    return rows if len(rows) <= most else rows[np.linspace(0, len(rows) - 1, most).astype(int)]


def _publish(result: ExportResult, out_dir: Path, facts: dict) -> None:
    """Move the staged files to their final names, retiring the previous export's files first; an interrupt waits
    until the renames are done."""
    report = out_dir / "export.json"
    with signals_deferred():
        previous = _listed_files(report)
        report.unlink(missing_ok=True)  # from here until it is rewritten, no report claims any file
        for staged, variant in zip(result.files, result.variants):
            variant.file = staged.name if variant.passed else f"{REJECTED}/{staged.name}"
        for old in previous - {v.file for v in result.variants}:
            (out_dir / old).unlink(missing_ok=True)
        published = [out_dir / v.file for v in result.variants]
        for staged, final in zip(result.files, published):
            with writing(final):
                final.parent.mkdir(exist_ok=True)
                os.replace(staged, final)
        write_json(report, facts | {
            "reference_accuracy": result.reference_accuracy,
            "variants": [v.to_json() for v in result.variants],
            "fp32_layers": result.fp32_layers, "layer_precision": result.layer_precision, "notes": result.notes,
        })
    result.files = [*published, report]


def _remove_stale_staging(out_dir: Path) -> None:
    """Staging folders of exports that were killed (their process is gone); a running export's is left alone."""
    for folder in out_dir.glob(f"{_STAGING}*-*"):
        pid = folder.name.removeprefix(_STAGING).split("-")[0]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _listed_files(report: Path) -> set[str]:
    """The model files a previous export.json lists (relative to its folder): the only files export replaces."""
    try:
        listed = {str(v["file"]) for v in json.loads(report.read_text())["variants"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {name for name in listed
            if len(Path(name).parts) == 1 or Path(name).parts[:1] == (REJECTED,) and len(Path(name).parts) == 2}


def _metadata(student: nn.Module, recipe: Recipe, options: ExportOptions, metrics: dict) -> dict:
    """What the exported file says about itself: its input contract, front-end, teacher (no local paths: the file
    is shipped) and fidelity, from the run's metrics.json."""
    fidelity, teacher_dim = metrics.get("fidelity", {}), metrics.get("teacher", {}).get("dim")
    frontend = student.frontend.spec
    return {
        "edgekd_version": __version__,
        "input": ("mono float32 audio, shape (batch, samples)" if options.frontend == "include" else
                  "float32 log-mel dB, shape (batch, n_mels, frames), computed as in 'frontend'"),
        "sample_rate": frontend.sample_rate,
        "window_seconds": recipe.window.seconds,
        "frontend": json.dumps(frontend.to_dict() | {"in_graph": options.frontend == "include"}),
        "embedding_dim": student.embedding_dim,
        "teacher": json.dumps(portable_description(recipe.teacher) | {"embedding_dim": teacher_dim}),
        "recipe_digest": recipe.digest(),
        "fidelity_at_export": json.dumps(fidelity.get("test", {})),
    }
