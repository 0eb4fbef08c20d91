"""`edgekd profile`: storage, MACs, activation memory and latency of any ONNX model, against a device budget."""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import onnx

from edgekd.errors import EdgekdError, ModelError
from edgekd.onnx.graph import (
    bytes_by_dtype,
    frontend_constants,
    knowledge_base_constants,
    load_model,
    parameter_count,
    storage_bytes,
    weight_initializers,
    zipped_bytes,
)
from edgekd.profile.devices import DeviceProfile, load_device
from edgekd.profile.latency import measure_latency, measure_session_memory
from edgekd.profile.memory import (
    RUN_TENSOR_LIMIT,
    GraphRun,
    MemoryPlan,
    graph_run,
    plan_memory,
)
from edgekd.profile.operators import RUNTIME_OPS, TFLM_RUNTIMES
from edgekd.profile.pte_graph import read_pte
from edgekd.profile.tflite_graph import read_tflite
from edgekd.profile.tflm import predict_tflm_arena
from edgekd.tflite.micro import tflm_arena_isolated


@dataclass
class Check:
    name: str  # flash, ram, macs, latency or ops
    limit: float
    actual: float
    source: str  # where the limit comes from: a device budget or a command-line flag
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.actual <= self.limit

    def describe(self) -> str:
        unit = {"flash": " B", "ram": " B", "latency": " ms", "ops": " unsupported node(s)",
                "dtypes": " unsupported dtype(s)"}.get(self.name, "")
        text = f"{self.name}: {self.actual:g}{unit} > {self.limit:g}{unit} ({self.source})"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class GraphFacts:
    """What the graph alone says about a model: shared by `edgekd profile` and `distill`'s size table."""

    params: int
    frontend_params: int  # of which: constants of the log-mel front-end (DFT, mel matrix)
    frontend_bytes: int
    knowledge_base_bytes: int  # of the storage: a retrieval knowledge base shipped inside the model
    storage_bytes: int
    activation_bytes: int  # peak live bytes over onnxruntime's optimised graph
    largest_tensor_bytes: int
    working_set_bytes: int
    arena_bytes: int
    macs: int

    @classmethod
    def from_json(cls, data: dict) -> GraphFacts:
        """The facts among a larger JSON object's keys (metrics.json flattens them into each network's entry)."""
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass
class ProfileReport(GraphFacts):
    model: str
    zipped_bytes: int
    bytes_by_dtype: dict[str, int]
    constant_ram_bytes: int  # of the activation memory: constants expanded at run time (dequantised weights)
    fragmentation: float
    # "optimised", "raw", "static" (shapes inferred for a model too large to run: no latency), "tflite" or "pte"
    graph: str
    ram_bytes: int  # what RAM budgets judge: the runtime's own figure where known, else the peak live activations
    ram_basis: str
    tflm_arena: dict | None  # TFLM's head, tail and total bytes, and whether measured (a .tflite) or predicted
    executorch_plan: list[int] | None  # a .pte: the sizes of the buffers ExecuTorch's compiler planned
    latency_ms: float | None
    latency_p90_ms: float | None
    measured_peak_bytes: int | None
    device: str | None
    checks: list[Check] = field(default_factory=list)
    top_memory: list[dict] = field(default_factory=list)
    top_macs: list[dict] = field(default_factory=list)
    unsupported: list[dict] = field(default_factory=list)
    plan: MemoryPlan | None = None

    @property
    def violations(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def fits(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        """The stable contract for CI (documented in README): every field but the plan, and the verdict."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("plan", "checks")}
        return data | {"fits": self.fits, "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
                       "violations": [c.describe() for c in self.violations]}


def analyse_graph(model_path: Path, raw: bool = False) -> tuple[GraphFacts, MemoryPlan]:
    """Static facts and the memory plan: the graph-only part of a profile."""
    facts, plan, _ = _analyse(model_path, load_model(model_path), raw)
    return facts, plan


def _analyse(model_path: Path, model: onnx.ModelProto, raw: bool) -> tuple[GraphFacts, MemoryPlan, GraphRun]:
    run = graph_run(model, str(model_path), optimise=not raw)
    plan = plan_memory(run)
    frontend_params, frontend_bytes = frontend_constants(model)
    facts = GraphFacts(
        params=parameter_count(model),
        frontend_params=frontend_params,
        frontend_bytes=frontend_bytes,
        knowledge_base_bytes=knowledge_base_constants(model)[1],
        storage_bytes=storage_bytes(model_path),
        activation_bytes=plan.peak_bytes,
        largest_tensor_bytes=plan.largest_tensor_bytes,
        working_set_bytes=plan.working_set_bytes,
        arena_bytes=plan.arena_bytes,
        macs=sum(s.macs for s in plan.steps),
    )
    return facts, plan, run


def compute_dtypes(model) -> set[str]:
    """Element types of the model's weight tensors (quantisation scales and zero points, shapes, int32 biases and
    scalar constants aside: a scalar follows the activation type, and converters map uint8 and int8 activations
    onto each other, so activation types are not checked)."""
    return {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in weight_initializers(model) if t.dims}


def unsupported_nodes(model: onnx.ModelProto, runtime: str) -> list[dict]:
    ops = RUNTIME_OPS.get(runtime)
    if ops is None:
        return []
    return [{"node": n.name, "op": n.op_type} for n in model.graph.node if n.op_type not in ops]


def _device_checks(profile: DeviceProfile, facts: GraphFacts, ram_bytes: int, weight_dtypes: set[str],
                   unsupported: list[dict] | None, ram_detail: str = "") -> list[Check]:
    """Flash, RAM, operators (`unsupported`: None where the runtime itself checked them at load) and weight dtypes
    against the device."""
    checks = [Check("flash", profile.flash_budget, facts.storage_bytes, f"{profile.name} flash budget"),
              Check("ram", profile.ram_budget, ram_bytes, f"{profile.name} RAM budget", ram_detail)]
    if unsupported is not None:
        ops = sorted({u["op"] for u in unsupported})
        checks.append(Check("ops", 0, len(unsupported), f"{profile.runtime} operator set",
                            f"{', '.join(ops)} (e.g. node {unsupported[0]['node']})" if unsupported else ""))
    missing = sorted(weight_dtypes - set(profile.dtypes))
    checks.append(Check("dtypes", 0, len(missing), f"{profile.name} dtypes {', '.join(profile.dtypes)}",
                        ", ".join(missing)))
    return checks


def _check_budgets(max_flash, max_ram, max_macs, max_latency_ms, latency_runs: int) -> None:
    """A budget that is not a finite non-negative number, or one nothing will measure, would pass silently."""
    for flag, value in (("--max-flash", max_flash), ("--max-ram", max_ram), ("--max-macs", max_macs),
                        ("--max-latency-ms", max_latency_ms)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise EdgekdError(f"{flag} {value}: a budget must be a finite number ≥ 0")
    if max_latency_ms is not None and latency_runs < 1:
        raise EdgekdError("--max-latency-ms needs timed runs to judge: give --runs 1 or more")


def profile_model(
    model_path: Path,
    device: str | DeviceProfile | None = None,
    max_flash: int | None = None,
    max_ram: int | None = None,
    max_macs: float | None = None,
    max_latency_ms: float | None = None,
    latency_runs: int = 20,
    raw: bool = False,
) -> ProfileReport:
    _check_budgets(max_flash, max_ram, max_macs, max_latency_ms, latency_runs)
    profile = load_device(device) if isinstance(device, str) else device
    model_path = Path(model_path)
    if model_path.suffix.lower() in (".tflite", ".pte"):  # model.TFLITE is a .tflite too
        return _profile_runtime_file(model_path, profile, max_flash, max_ram, max_macs, max_latency_ms)
    model = load_model(model_path)
    facts, plan, run = _analyse(model_path, model, raw)
    # a microcontroller runtime's RAM is its whole arena: planned tensors and its persistent buffers
    arena = predict_tflm_arena(run) if profile is not None and profile.runtime in TFLM_RUNTIMES else None
    ram_bytes = arena.total if arena else facts.activation_bytes
    unsupported = unsupported_nodes(model, profile.runtime) if profile is not None else []
    checks = _device_checks(profile, facts, ram_bytes, compute_dtypes(model), unsupported) if profile else []
    checks += _flag_checks(facts, ram_bytes, max_flash, max_ram, max_macs)
    latency = measured = None
    if plan.static and max_latency_ms is not None:
        raise EdgekdError(f"{model_path}: --max-latency-ms cannot be judged: the model declares a tensor over "
                          f"{RUN_TENSOR_LIMIT // 2**20} MiB ({plan.largest_tensor}), too large to run on this host")
    if latency_runs > 0 and not plan.static:
        threads = profile.threads if profile else 1
        latency = measure_latency(model_path, threads, runs=latency_runs)
        measured = measure_session_memory(model_path, threads)
        if max_latency_ms is not None:
            checks.append(Check("latency", max_latency_ms, latency["median_ms"], "--max-latency-ms",
                                "median on this host"))
    return _report(model_path, facts, plan, profile, checks, unsupported,
                   zipped_bytes=zipped_bytes(model_path),
                   bytes_by_dtype=bytes_by_dtype(model),
                   graph="static" if plan.static else "raw" if raw else "optimised",
                   latency_ms=latency["median_ms"] if latency else None,
                   latency_p90_ms=latency["p90_ms"] if latency else None,
                   measured_peak_bytes=measured, ram_bytes=ram_bytes,
                   ram_basis="TFLM arena total, predicted" if arena else "peak live activations",
                   tflm_arena=asdict(arena) if arena else None, executorch_plan=None)


def _profile_runtime_file(path: Path, profile: DeviceProfile | None, max_flash, max_ram, max_macs,
                          max_latency_ms) -> ProfileReport:
    """A `.tflite` as TFLM runs it or a `.pte` as ExecuTorch does: the same graph analysis, and the runtime's own
    memory figure as the RAM budgets judge: TFLM's arena (measured on this host) or the buffers ExecuTorch's compiler
    planned (written in the program)."""
    kind = path.suffix.lower().lstrip(".")
    if max_latency_ms is not None:
        raise EdgekdError(f"{path}: --max-latency-ms: a .{kind} is timed on the device, not on this host (its host "
                          f"kernels say nothing of a microcontroller's speed); drop the flag")
    if kind == "tflite" and profile is not None and profile.runtime not in TFLM_RUNTIMES:
        raise EdgekdError(f"{path}: device '{profile.name}' runs {profile.runtime}, which does not load .tflite "
                          f"files; profile the .onnx export for it")
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    if kind == "tflite":
        graph = read_tflite(path)
        arena = tflm_arena_isolated(path)  # ops TFLM lacks and files its kernels crash on end here, in one line
        ram_bytes, ram_basis, ram_detail = arena.total, "TFLM arena total, measured on this host", "TFLM's arena, measured"
        runtime_figures = {"tflm_arena": asdict(arena), "executorch_plan": None}
    else:
        graph, planned = read_pte(path)
        ram_bytes, ram_basis = sum(planned), "ExecuTorch's planned buffers, from the program"
        ram_detail = "ExecuTorch's memory plan"
        runtime_figures = {"tflm_arena": None, "executorch_plan": planned}
    plan = plan_memory(graph.run)
    facts = GraphFacts(
        params=graph.params, frontend_params=graph.frontend_params, frontend_bytes=graph.frontend_bytes,
        knowledge_base_bytes=0, storage_bytes=path.stat().st_size, activation_bytes=plan.peak_bytes,
        largest_tensor_bytes=plan.largest_tensor_bytes, working_set_bytes=plan.working_set_bytes,
        arena_bytes=plan.arena_bytes, macs=sum(s.macs for s in plan.steps))
    # the operators: TFLM checked them loading the file; a .pte's kernels are linked into the device's runtime build
    checks = _device_checks(profile, facts, ram_bytes, graph.weight_dtypes, None, ram_detail) if profile else []
    checks += _flag_checks(facts, ram_bytes, max_flash, max_ram, max_macs)
    return _report(path, facts, plan, profile, checks, [],
                   zipped_bytes=len(zlib.compress(path.read_bytes(), 9)), bytes_by_dtype=graph.bytes_by_dtype,
                   graph=kind, latency_ms=None, latency_p90_ms=None, measured_peak_bytes=None,
                   ram_bytes=ram_bytes, ram_basis=ram_basis, **runtime_figures)


def _flag_checks(facts: GraphFacts, ram_bytes: int, max_flash, max_ram, max_macs) -> list[Check]:
    return [Check(name, limit, actual, flag) for name, limit, actual, flag in (
        ("flash", max_flash, facts.storage_bytes, "--max-flash"), ("ram", max_ram, ram_bytes, "--max-ram"),
        ("macs", max_macs, facts.macs, "--max-macs")) if limit is not None]


def _report(path: Path, facts: GraphFacts, plan: MemoryPlan, profile: DeviceProfile | None, checks: list[Check],
            unsupported: list[dict], **measured) -> ProfileReport:
    heaviest = sorted(plan.steps, key=lambda s: s.live_bytes, reverse=True)[:5]
    costliest = sorted(plan.steps, key=lambda s: s.macs, reverse=True)[:5]
    return ProfileReport(
        **asdict(facts),
        model=str(path),
        constant_ram_bytes=plan.constant_bytes,
        fragmentation=plan.fragmentation,
        device=profile.name if profile else None,
        checks=checks,
        top_memory=[{"node": s.name, "op": s.op_type, "live_bytes": s.live_bytes} for s in heaviest],
        top_macs=[{"node": s.name, "op": s.op_type, "macs": s.macs} for s in costliest if s.macs],
        unsupported=unsupported,
        plan=plan,
        **measured,
    )
