"""`edgekd search`: the most faithful student that fits a named device, found and proven in one command.

recipe + device → candidates (family, width, depth, mel bands, sample rate, hop, front-end inside the model or on
the device) → each one's flash, RAM (as the device's runtime plans it), MACs and host latency measured on an export of
the untrained network at the target precision → those that fit distilled from the shared teacher cache, stopped
early when their validation cosine lags (Hyperband over epochs) → the best exported at the target precision, gated
and profiled against the device.

Optuna drives it (TPE sampler, Hyperband pruner, an SQLite study in the output folder, so a killed search goes on
where it stopped). One objective, the validation cosine to the teacher: Optuna's pruners do not support
multi-objective studies (optuna#2135), and RAM and flash are known before training, so they are constraints rather
than objectives — a candidate that cannot fit is recorded as pruned before training, its excess telling the sampler
where not to look — and the Pareto front of fidelity against RAM and flash is drawn from the trained trials.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from edgekd.configs import FrontendPlacement, Precision, SearchConfig
from edgekd.errors import EdgekdError, environment_error, first_line
from edgekd.extras import check_installed
from edgekd.files import check_writable, content_key, write_json
from edgekd.formats.base import Variant, format_running
from edgekd.formats.options import ExportOptions
from edgekd.profile import ProfileReport, profile_model
from edgekd.profile.devices import DeviceProfile
from edgekd.profile.modules import footprint
from edgekd.recipe import EvaluationData, Recipe, load_evaluation_data, recipe_from_dict
from edgekd.run_dir import RunDir
from edgekd.runtime import init_from_environment, leave_process_group, seeded, share
from edgekd.stages.distill import (
    DistillMetrics,
    Hooks,
    distill,
    quantisation_aware_refusal,
)
from edgekd.stages.evaluate import held_out_fidelity
from edgekd.stages.export import ExportResult, budget_of, export_run
from edgekd.students import PRESETS, build_student
from edgekd.students.base import Network
from edgekd.students.configs import StudentConfig
from edgekd.students.registry import STUDENTS
from edgekd.teachers import build_teacher
from edgekd.trainer import TrainingStopped

if TYPE_CHECKING:
    import optuna

# The space when the recipe's `search:` leaves a key out, by device class. Microcontrollers: small families and
# widths, fewer mel bands, and the front-end on the device too (with it inside the model the 1 s STFT alone needs
# ~380 kB of arena at n_fft 256, more than an nrf52840 has).
MICROCONTROLLER_SPACE = {"families": ["sea_cnn", "dscnn"], "widths": [0.25, 0.5, 1.0], "depths": [3, 4],
                         "n_mels": [32, 64], "sample_rates": [8000, 16000], "hop_ms": [20.0, 40.0],
                         "frontend": ["exclude", "include"]}
LARGER_SPACE = {"families": ["sea_cnn", "dscnn", "mobilenet"], "widths": [0.5, 1.0, 2.0], "depths": [3, 4],
                "n_mels": [64, 128], "sample_rates": [8000, 16000], "hop_ms": [10.0, 20.0], "frontend": ["include"]}
PROPOSALS_PER_CANDIDATE = 10  # the most proposals per distinct candidate asked for, repeats included
EXPORT_ATTEMPTS = 3  # the best trained candidates exported in turn until one passes its gate and fits
LATENCY_RUNS = 10  # per candidate before training (host latency is reported, not a budget, unless the device has one)
STUDY = "edgekd-search"
PARAMETERS = {"families": "family", "widths": "width", "depths": "depth", "n_mels": "n_mels",
              "sample_rates": "sample_rate", "hop_ms": "hop_ms", "frontend": "frontend"}  # `search:` key → Candidate


@dataclass(frozen=True)
class Candidate:
    family: str
    width: float
    depth: int
    n_mels: int
    sample_rate: int
    hop_ms: float
    frontend: FrontendPlacement

    def student(self) -> StudentConfig:
        rate = self.sample_rate
        keys = {"sample_rate": rate, "n_fft": 1 << math.ceil(math.log2(rate * 0.025)),  # ≥ 25 ms, a power of two
                "hop_length": round(rate * self.hop_ms / 1000), "n_mels": self.n_mels}
        return STUDENTS[self.family].config.scaled(self.width, self.depth, **keys)  # the family says how it scales

    @property
    def name(self) -> str:
        return (f"{self.family}-w{self.width:g}-d{self.depth}-m{self.n_mels}-{self.sample_rate // 1000}k-"
                f"h{self.hop_ms:g}-{'fe' if self.frontend == 'include' else 'nofe'}")


@dataclass
class SearchTrial:
    number: int
    name: str  # the candidate's, also its run directory's
    state: str  # trained, stopped early, does not fit, failed
    candidate: dict
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    macs: int | None = None
    latency_ms: float | None = None
    violations: list[str] = field(default_factory=list)
    epochs: int | None = None  # trained
    val_cosine: float | None = None  # the best epoch's (the objective), or the last reported when stopped early
    test_cosine: float | None = None
    test_cka: float | None = None
    run_dir: str | None = None
    held_out_cosine: float | None = None  # on every window of --rank-on's data (trained trials)
    held_out_cka: float | None = None
    pareto: bool = False  # no trained trial ranks higher with no more RAM and flash
    rescue: str | None = None  # exported: what its file needed past plain INT8 to pass its gate within the budget

    @property
    def rank(self) -> float:
        """What trained candidates are ranked by: fidelity on held-out data when the search was given some, else on
        the recipe's validation split."""
        return self.val_cosine if self.held_out_cosine is None else self.held_out_cosine


@dataclass
class SearchResult:
    recipe: str
    device: str
    precision: str
    space: dict
    trials: list[SearchTrial]
    budgets: dict[str, float]  # flash and RAM limits of the device
    seconds: float
    ranked_on: str = "the validation split"  # or --rank-on's data
    held_out_windows: int | None = None
    chosen: int | None = None  # trial number
    export: str | None = None  # the chosen student's file at the target precision
    profile: dict | None = None  # `edgekd profile --device` of that file
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return bool(self.profile and self.profile["fits"])

    def count(self, state: str) -> int:
        return sum(trial.state == state for trial in self.trials)

    def to_json(self) -> dict:
        return asdict(self) | {"fits": self.fits, "counts": {state: self.count(state) for state in TRIAL_STATES}}


TRIAL_STATES = ("trained", "stopped early", "does not fit", "failed")


def search_space(config: SearchConfig | None, device: DeviceProfile) -> dict[str, list]:
    runner = format_running(device.runtime)
    defaults = MICROCONTROLLER_SPACE if runner is not None and runner.microcontroller else LARGER_SPACE
    given = config.model_dump(exclude_none=True, include=set(defaults)) if config else {}
    return {key: sorted(set(given.get(key, choices))) for key, choices in defaults.items()}


def space_params(space: dict[str, list]) -> dict[str, list]:
    """The space keyed by Candidate's fields (what the study's trials name their parameters)."""
    return {PARAMETERS[key]: choices for key, choices in space.items()}


def _candidate(space: dict[str, list], trial: optuna.Trial) -> Candidate:
    return Candidate(**{name: trial.suggest_categorical(name, choices) for name, choices in space_params(space).items()})


def measure(config: StudentConfig, dim: int, window_seconds: float, seed: int, frontend: FrontendPlacement,
            device: DeviceProfile, precision: Precision) -> ProfileReport:
    """What `edgekd profile --device` will say of a student's export, before any training: the untrained network
    exported with its front-end inside the model or outside it (the device computing the log-mel)."""
    with seeded(seed):
        student = build_student(config, dim).eval()
        audio = 0.1 * torch.randn(1, round(config.sample_rate * window_seconds))
    if frontend == "include":
        return footprint(student, audio, device, precision, "audio", LATENCY_RUNS)
    with torch.no_grad():
        logmel = student.frontend(audio)
    return footprint(Network(student).eval(), logmel, device, precision, "logmel", LATENCY_RUNS)


def _trial_recipe(recipe: Recipe, candidate: Candidate, epochs: int) -> Recipe:
    raw = copy.deepcopy(recipe.to_dict())
    raw.pop("search", None)
    raw["student"] = candidate.student().model_dump(mode="json")
    raw["train"]["epochs"] = epochs
    raw["name"] = f"{recipe.name}-{candidate.name}"
    return recipe_from_dict(raw, recipe.source)


def _train(trial: optuna.Trial, recipe: Recipe, run_dir: Path, on_trial: Callable[[str], None]) -> DistillMetrics:
    """Distil the candidate (or read back the run a previous search finished), reporting each epoch's validation
    cosine to the pruner; stopped early when Hyperband says so. A run killed mid-way resumes from its checkpoint.
    Under torchrun the other ranks are told to distil it too."""
    import optuna

    run = RunDir(run_dir)
    finished = run.finished_metrics(recipe)
    if finished is not None:
        return DistillMetrics.from_json(finished)

    last = {}

    def stop(log) -> bool:
        trial.report(log.val_cosine, log.epoch)
        last["log"] = log
        return trial.should_prune()

    resume = run.has_run()
    share({"recipe": recipe.to_dict(), "source": recipe.source, "run_dir": str(run_dir), "resume": resume})
    try:
        return distill(recipe, run_dir, resume=resume, hooks=Hooks(stop=stop)).metrics
    except TrainingStopped:
        on_trial(f"trial {trial.number}: stopped after {last['log'].epoch} epoch(s), validation cosine "
                 f"{last['log'].val_cosine:.3f} behind the others")
        raise optuna.TrialPruned() from None


def _follow() -> None:
    """Ranks other than 0 under torchrun: distil each candidate rank 0 trains, until it says the search is over."""
    while (order := share(None)) is not None:
        try:
            distill(recipe_from_dict(order["recipe"], order["source"]), Path(order["run_dir"]), resume=order["resume"],
                    hooks=Hooks(stop=_rank_zero_decides))
        except TrainingStopped:
            pass
    leave_process_group()


def _rank_zero_decides(_log) -> bool:
    return False  # never asked: rank 0's answer is shared


def _objective(recipe: Recipe, space: dict[str, list], device: DeviceProfile, precision: Precision, epochs: int,
               out_dir: Path, on_trial: Callable[[str], None]) -> Callable[[optuna.Trial], float]:
    import optuna

    dim = recipe.reduction.dim if recipe.reduction.method != "none" else build_teacher(recipe.teacher).dim
    measured: dict[Candidate, ProfileReport] = {}

    def objective(trial: optuna.Trial) -> float:
        candidate = _candidate(space, trial)
        if candidate not in measured:
            measured[candidate] = measure(candidate.student(), dim, recipe.window.seconds, recipe.seed,
                                          candidate.frontend, device, precision)
        report = measured[candidate]
        trial.set_user_attr("measured", {"flash_bytes": report.storage_bytes, "ram_bytes": report.ram_bytes,
                                         "macs": report.macs, "latency_ms": report.latency_ms,
                                         "violations": [check.describe() for check in report.violations]})
        for check in report.checks:  # ≤ 0: within budget; the sampler learns from how far over a candidate is
            if check.name not in trial.constraints:  # a retried trial has them already
                trial.set_constraint(check.name, (check.actual - check.limit) / max(check.limit, 1))
        if not report.fits:
            on_trial(f"trial {trial.number}: {candidate.name} does not fit ({report.violations[0].describe()}): "
                     "not trained")
            raise optuna.TrialPruned("does not fit")
        run_dir = out_dir / "trials" / candidate.name
        trial.set_user_attr("run_dir", str(run_dir))
        on_trial(f"trial {trial.number}: {candidate.name} fits (flash {report.storage_bytes / 1000:.0f} kB, RAM "
                 f"{report.ram_bytes / 1000:.0f} kB): training")
        metrics = _train(trial, _trial_recipe(recipe, candidate, epochs), run_dir, on_trial)
        test = metrics.fidelity["test"]
        trial.set_user_attr("trained", {"epochs": metrics.training.epochs, "test_cosine": test.cosine,
                                        "test_cka": test.cka})
        on_trial(f"trial {trial.number}: {candidate.name}: validation cosine {metrics.training.best_val_cosine:.3f}")
        return metrics.training.best_val_cosine

    return objective


def _identity(recipe: Recipe, space: dict[str, list], device: DeviceProfile, precision: Precision, epochs: int,
              min_epochs: int) -> dict[str, object]:
    """What makes the trials of a study comparable, each with the option or key that sets it: a search continued in
    the same --out with any of them changed would rank candidates trained and measured differently."""
    recipe_keys = {key: value for key, value in recipe.to_dict().items() if key != "search"}
    identity = {"recipe": content_key(recipe_keys, 16), "--device": device.model_dump(mode="json"),
                "--precision": precision, "--epochs": epochs, "search.min_epochs": min_epochs, "search space": space}
    return json.loads(json.dumps(identity))  # as the study stores it


@contextlib.contextmanager
def _study_storage(path: Path):
    """The study's SQLite file failing (a full disk, a file that is not a study) as one line naming it. A file this
    command created is removed again, never left truncated: the candidates it trained are read back from their run
    folders when a search proposes them again."""
    from sqlalchemy.exc import SQLAlchemyError

    existed = path.exists()
    try:
        yield
    except SQLAlchemyError as err:
        cause = first_line(getattr(err, "orig", None) or err, 120)
        if not existed:
            path.unlink(missing_ok=True)
        if "full" in cause or "I/O" in cause or "readonly" in cause:
            raise environment_error(path, OSError(cause), doing="write the study") from None
        raise EdgekdError(f"{path}: not a search's study ({cause}); remove it, or give another --out") from None


def _study(out_dir: Path, identity: dict[str, object], space: dict[str, list], trials: int, seed: int, min_epochs: int,
           epochs: int):
    """The study kept in out_dir/study.db, refused when it was begun with other settings. A trial an interrupted or
    killed search left unfinished is proposed again first (its run directory keeps its checkpoint, so training
    continues from there)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported once, as edgekd reports errors
    params = space_params(space)
    # a space no larger than the trials asked for is tried whole, each candidate once
    sampler = optuna.samplers.GridSampler(params, seed=seed) if math.prod(map(len, params.values())) <= trials \
        else optuna.samplers.TPESampler(seed=seed, multivariate=True)
    pruner = optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=epochs)
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{out_dir / 'study.db'}", direction="maximize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    begun = study.user_attrs.get("identity")
    if begun is None:
        study.set_user_attr("identity", identity)
    elif begun != identity:
        changed = ", ".join(key for key in identity if begun.get(key) != identity[key])
        raise EdgekdError(f"{out_dir}: holds a search begun with another {changed}; give another --out, or the "
                          "same settings to continue it")
    retried = {trial.system_attrs.get("failed_trial") for trial in study.get_trials(deepcopy=False)}
    unfinished = (optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL)
    for trial in study.get_trials(deepcopy=False, states=unfinished):
        if trial.number in retried:
            continue
        if trial.state == optuna.trial.TrialState.RUNNING:  # the process that ran it was killed
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        with warnings.catch_warnings():  # experimental since Optuna 2.8, and what its heartbeat uses to retry
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
        retry(study, trial)  # same parameters (and grid point), proposed first
    if isinstance(sampler, optuna.samplers.TPESampler):  # a grid tries them anyway
        for candidate in shipped_candidates(space):
            study.enqueue_trial(asdict(candidate), skip_if_exists=True)
    return study


def shipped_candidates(space: dict[str, list]) -> list[Candidate]:
    """The candidates of the space that are shipped presets (`edgekd students`), with each front-end placement: the
    search starts from them, so what it chooses was compared with them on validation data."""
    params = space_params(space)
    shipped = [config for config, _ in PRESETS.values()]
    return [candidate for values in itertools.product(*params.values())
            if (candidate := Candidate(**dict(zip(params, values)))).student() in shipped]


def _tried(study) -> dict[str, object]:
    """The last finished trial of each candidate proposed (a candidate proposed again is read back or resumed)."""
    import optuna

    retried = {frozen.system_attrs.get("failed_trial") for frozen in study.get_trials(deepcopy=False)}
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    # a trial an interruption left unfinished is stood for by its retry
    return {Candidate(**frozen.params).name: frozen for frozen in study.get_trials(deepcopy=False, states=finished)
            if frozen.number not in retried}


def _trials(study) -> list[SearchTrial]:
    import optuna

    states = {optuna.trial.TrialState.COMPLETE: "trained", optuna.trial.TrialState.FAIL: "failed"}
    found = []
    for name, frozen in _tried(study).items():
        measured, trained = frozen.user_attrs.get("measured", {}), frozen.user_attrs.get("trained", {})
        state = states.get(frozen.state) or ("stopped early" if frozen.intermediate_values else "does not fit")
        last_epoch = max(frozen.intermediate_values, default=None)
        last = None if last_epoch is None else frozen.intermediate_values[last_epoch]
        found.append(SearchTrial(
            frozen.number, name, state, frozen.params, measured.get("flash_bytes"), measured.get("ram_bytes"),
            measured.get("macs"), measured.get("latency_ms"), measured.get("violations", []),
            trained.get("epochs", last_epoch),
            frozen.value if frozen.state == optuna.trial.TrialState.COMPLETE else last,
            trained.get("test_cosine"), trained.get("test_cka"), frozen.user_attrs.get("run_dir")))
    _mark_pareto([trial for trial in found if trial.state == "trained"])
    return found


def _mark_pareto(trained: list[SearchTrial]) -> None:
    for trial in trained:
        trial.pareto = not any(
            other.rank >= trial.rank and other.ram_bytes <= trial.ram_bytes
            and other.flash_bytes <= trial.flash_bytes and (other.rank, other.ram_bytes, other.flash_bytes)
            != (trial.rank, trial.ram_bytes, trial.flash_bytes) for other in trained)


def _rank_on_held_out(result: SearchResult, held_out: EvaluationData, teacher_config,
                      on_trial: Callable[[str], None]) -> None:
    """Each trained candidate's fidelity on every window of the held-out data: with more windows than the recipe's
    validation split, students a point of cosine apart are told apart (the teacher embeds the data once, cached)."""
    teacher = build_teacher(teacher_config)
    trained = [trial for trial in result.trials if trial.state == "trained"]
    on_trial(f"ranking {len(trained)} trained candidate(s) on {held_out.source}")
    for trial in trained:
        measured, result.held_out_windows = held_out_fidelity(Path(trial.run_dir), held_out, teacher)
        trial.held_out_cosine, trial.held_out_cka = measured.cosine, measured.cka
    result.ranked_on = held_out.source
    _mark_pareto(trained)


def _prove(result: SearchResult, recipe: Recipe, device: DeviceProfile, precision: Precision,
           formats: tuple[str, ...], on_trial: Callable[[str], None]) -> None:
    """Export the best trained candidates in turn at the target precision (gated against PyTorch, each layer's
    precision chosen within the device's budget when plain INT8 misses the gate) and profile the file against the
    device; before a candidate is given up, it is fine-tuned with quantisation-aware training and exported again.
    The first that passes and fits is chosen."""
    ranked = sorted((t for t in result.trials if t.state == "trained"), key=lambda t: -t.rank)
    qat_epochs = (recipe.search or SearchConfig()).qat_epochs if precision == "int8" else 0
    qat_refused = functools.cache(lambda: _qat_refusal(recipe))  # asked only of a candidate that needs it
    for trial in ranked[:EXPORT_ATTEMPTS]:
        run_dir = Path(trial.run_dir)
        on_trial(f"exporting trial {trial.number} ({run_dir.name}) at {precision}")
        options = ExportOptions(int8="static" if precision == "int8" else "none", fp16=False,
                                frontend=trial.candidate["frontend"], formats=formats)
        if _exported_and_fits(result, trial, run_dir / "export", options, device, precision):
            return
        if not qat_epochs:
            continue
        if qat_refused():
            result.notes.append(f"trial {trial.number}: not fine-tuned with quantisation-aware training: "
                                f"{qat_refused()}")
            continue
        on_trial(f"trial {trial.number}: quantisation-aware fine-tuning ({qat_epochs} epoch(s)), then exporting again")
        qat = replace(options, qat_epochs=qat_epochs)
        if _exported_and_fits(result, trial, run_dir / "export-qat", qat, device, precision):
            return


def _qat_refusal(recipe: Recipe) -> str | None:
    """Why the search cannot fine-tune its candidates with quantisation-aware training, or None."""
    why = quantisation_aware_refusal(recipe, embeds=True)  # a search's teacher always embeds
    try:
        check_installed("executorch", "search.qat_epochs (quantisation-aware fine-tuning)")
    except EdgekdError as err:
        why = why or str(err)
    return why


def _exported_and_fits(result: SearchResult, trial: SearchTrial, export_dir: Path, options: ExportOptions,
                       device: DeviceProfile, precision: Precision) -> bool:
    """Export the trial into `export_dir` within the device's budget; a file of the precision that passed its gate
    is profiled against the device and recorded as the search's choice; whether it fits."""
    exported = export_run(Path(trial.run_dir), export_dir, options, budget_of(device))
    wanted = [v for v in exported.variants if v.precision.startswith(precision) and v.passed]
    if not wanted:
        missed = "; ".join(f"{v.file}: {', '.join(v.missed)}" for v in exported.variants if v.missed)
        result.notes.append(f"trial {trial.number}: no {precision} file passed its gate{_after(options)} ({missed})")
        return False
    path = export_dir / wanted[-1].file  # the runtime file when several formats were asked for
    trial.rescue = _rescue(wanted[-1], exported, options)
    report = profile_model(path, device)
    result.chosen, result.export, result.profile = trial.number, str(path), report.to_json()
    if not report.fits:
        result.notes.append(f"trial {trial.number}: {path.name} does not fit once exported{_after(options)}: "
                            f"{'; '.join(c.describe() for c in report.violations)}")
    return report.fits


def _after(options: ExportOptions) -> str:
    return f" after {options.qat_epochs} epoch(s) of quantisation-aware training" if options.qat_epochs else ""


def _rescue(variant: Variant, exported: ExportResult, options: ExportOptions) -> str | None:
    """What a file needed past plain post-training INT8, said as the export found it."""
    needed = [f"QAT {options.qat_epochs} epoch(s)"] if options.qat_epochs else []
    layers = exported.layer_precision.get(Path(variant.file).name)
    if layers:
        needed.append("layer precision: " + "; ".join(
            f"{precision} {sum(p == precision for p in layers.values())} layer(s)" for precision in
            ("int16x8", "fp32") if precision in layers.values()))
    elif variant.precision.endswith("fallback"):
        needed.append(f"FP32 fallback: {len(exported.fp32_layers)} layer(s)")
    return ", ".join(needed) or None


def search(recipe: Recipe, device: DeviceProfile, out_dir: Path, precision: Precision = "int8",
           trials: int | None = None, hours: float | None = None, epochs: int | None = None,
           formats: tuple[str, ...] | None = None, on_trial: Callable[[str], None] = lambda line: None,
           rank_on: str | None = None) -> SearchResult | None:
    """The search's result on rank 0 (the only process under one); None on torchrun's other ranks. `rank_on`: held-out
    data of the domain (as `evaluate --same-domain` takes it) the trained candidates are ranked on. `formats`: those
    the chosen student is exported to, the last one profiled; by default the one the device's runtime loads (its
    INT8 file is what the device runs, and a `.tflite`'s layer precision is chosen within the device's budget)."""
    runner = format_running(device.runtime)
    formats = formats or ((runner.name,) if runner is not None else ("onnx",))
    check_installed("search", "edgekd search")  # before any work: one line naming the install command
    held_out = load_evaluation_data(rank_on, "--rank-on") if rank_on else None  # checked before any work
    started = time.perf_counter()
    if init_from_environment() != 0:  # under torchrun: rank 0 searches, the others train with it
        _follow()
        return None
    if recipe.teacher.name == "none":
        raise EdgekdError(f"{recipe.source}: search ranks students by fidelity to a teacher; teacher 'none' has none")
    config = recipe.search or SearchConfig()
    space = search_space(config, device)
    trials = trials or config.trials
    epochs = epochs or recipe.train.epochs
    min_epochs = min(config.min_epochs, epochs)
    check_writable(out_dir / "search.json")
    # `trials` counts distinct candidates: the sampler may propose one again (it is read back, not retrained)
    target = min(trials, math.prod(map(len, space.values())))

    def enough(study, _trial) -> None:
        if len(_tried(study)) >= target:
            study.stop()

    try:
        with _study_storage(out_dir / "study.db"):
            study = _study(out_dir, _identity(recipe, space, device, precision, epochs, min_epochs), space, trials,
                           recipe.seed, min_epochs, epochs)
            if len(_tried(study)) < target:
                study.optimize(_objective(recipe, space, device, precision, epochs, out_dir, on_trial),
                               n_trials=PROPOSALS_PER_CANDIDATE * target, timeout=hours * 3600 if hours else None,
                               callbacks=[enough])
            tried = _trials(study)
    finally:
        share(None)  # under torchrun: the other ranks stop following, and the proof runs on this rank alone
        leave_process_group()
    budgets = {"flash": device.flash_budget, "ram": device.ram_budget}
    result = SearchResult(recipe.name, device.name, precision, space, tried, budgets, 0.0)
    if held_out is not None and result.count("trained"):
        _rank_on_held_out(result, held_out, recipe.teacher, on_trial)
    if result.count("trained"):
        _prove(result, recipe, device, precision, formats, on_trial)
    else:
        result.notes.append("no candidate both fits the device and trained: widen the space (search: in the recipe)")
    result.seconds = time.perf_counter() - started
    write_json(out_dir / "search.json", result.to_json())
    return result
