"""`edgekd profile`: storage, MACs, activation memory and latency of a model file of any format, against a device
budget. Each format reads its files (`edgekd/formats/*/graph.py`); this judges what they read."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from edgekd.errors import EdgekdError
from edgekd.firmware.result import DEPLOY_JSON, MODEL_COPY, latency_ms, read_deploy
from edgekd.firmware.toolchain import CORES
from edgekd.formats.base import (
    FileGraph,
    RuntimeMemory,
    format_of,
    format_running,
    memory_json,
)
from edgekd.formats.memory import MemoryPlan, plan_memory
from edgekd.formats.onnx.graph import RUN_TENSOR_LIMIT
from edgekd.profile.devices import DeviceProfile, load_device


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
    # the runtime's own figure (TFLM's arena, measured from a .tflite or predicted; ExecuTorch's plan of a .pte): in
    # the JSON under its format's key
    memory: RuntimeMemory | None
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
        data = {}
        for f in fields(self):
            if f.name == "memory":
                data |= memory_json(self.memory)
            elif f.name not in ("plan", "checks"):
                data[f.name] = getattr(self, f.name)
        return data | {"fits": self.fits, "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
                       "violations": [c.describe() for c in self.violations]}


def analyse_graph(model_path: Path, raw: bool = False) -> tuple[GraphFacts, MemoryPlan]:
    """Static facts and the memory plan: the graph-only part of a profile."""
    model_path = Path(model_path)
    graph = format_of(model_path).read(model_path, raw)
    plan = plan_memory(graph.run)
    return _facts(graph, plan), plan


def _facts(graph: FileGraph, plan: MemoryPlan) -> GraphFacts:
    return GraphFacts(
        params=graph.params, frontend_params=graph.frontend_params, frontend_bytes=graph.frontend_bytes,
        knowledge_base_bytes=graph.knowledge_base_bytes, storage_bytes=graph.storage_bytes,
        activation_bytes=plan.peak_bytes, largest_tensor_bytes=plan.largest_tensor_bytes,
        working_set_bytes=plan.working_set_bytes, arena_bytes=plan.arena_bytes, macs=sum(s.macs for s in plan.steps))


def _unsupported(graph: FileGraph, profile: DeviceProfile | None) -> list[dict] | None:
    """The graph's operators the device's runtime lacks; None where the runtime checks them itself."""
    if graph.operators is None:
        return None
    runner = format_running(profile.runtime) if profile is not None else None
    ops = runner.operators if runner is not None else None
    return [] if ops is None else [u for u in graph.operators if u["op"] not in ops]


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
    """The file as its format reads it, with the RAM budgets judging its runtime's own figure: TFLM's arena
    (measured on this host from a .tflite, predicted from an ONNX graph for a TFLM device), the buffers ExecuTorch's
    compiler planned (written in a .pte), else the peak live activations."""
    profile = load_device(device) if isinstance(device, str) else device
    model_path = Path(model_path)
    if (model_path / DEPLOY_JSON).is_file():
        return _profile_deployment(model_path, profile, max_flash, max_ram, max_macs, max_latency_ms)
    _check_budgets(max_flash, max_ram, max_macs, max_latency_ms, latency_runs)
    file_format = format_of(model_path)
    file_format.check_profile(model_path, profile.runtime if profile else None, profile.name if profile else None,
                              max_latency_ms)
    graph = file_format.read(model_path, raw)
    plan = plan_memory(graph.run)
    facts = _facts(graph, plan)
    ram_bytes, memory = file_format.ram_needed(model_path, profile.runtime if profile else None, graph)
    unsupported = _unsupported(graph, profile)
    checks = _device_checks(profile, facts, ram_bytes, graph.weight_dtypes, unsupported,
                            memory.detail if memory else "") if profile else []
    checks += _flag_checks(facts, ram_bytes, max_flash, max_ram, max_macs)
    if plan.static and max_latency_ms is not None:
        raise EdgekdError(f"{model_path}: --max-latency-ms cannot be judged: the model declares a tensor over "
                          f"{RUN_TENSOR_LIMIT // 2**20} MiB ({plan.largest_tensor}), too large to run on this host")
    latency = measured = None
    if latency_runs > 0 and not plan.static:
        latency, measured = file_format.latency(model_path, profile.threads if profile else 1, latency_runs)
        if max_latency_ms is not None:
            checks.append(Check("latency", max_latency_ms, latency["median_ms"], "--max-latency-ms",
                                "median on this host"))
    return _report(model_path, facts, plan, profile, checks, unsupported or [],
                   zipped_bytes=graph.zipped_bytes, bytes_by_dtype=graph.bytes_by_dtype, graph=graph.kind,
                   latency_ms=latency["median_ms"] if latency else None,
                   latency_p90_ms=latency["p90_ms"] if latency else None,
                   measured_peak_bytes=measured, ram_bytes=ram_bytes,
                   ram_basis=memory.basis if memory else "peak live activations", memory=memory)


def _profile_deployment(folder: Path, profile: DeviceProfile | None, max_flash, max_ram, max_macs,
                        max_latency_ms) -> ProfileReport:
    """An `edgekd deploy --build` folder: its model's graph, judged on the firmware's own flash and RAM as measured
    under QEMU, and on the latency its instructions take at the device's clock."""
    _check_budgets(max_flash, max_ram, max_macs, max_latency_ms, 1)
    deployed = read_deploy(folder)
    measured = deployed.get("measured")
    if measured is None:
        raise EdgekdError(f"{folder / DEPLOY_JSON}: the library was not built; run `edgekd deploy --build` first")
    built_for_it = profile is None or profile.cpu in CORES and CORES[profile.cpu].name == deployed["core"]
    if not built_for_it:
        raise EdgekdError(f"{folder}: built for {deployed['core']}; device '{profile.name}' has a {profile.cpu}: "
                          f"deploy for it")
    model = folder / MODEL_COPY
    graph = format_of(model).read(model)
    plan = plan_memory(graph.run)
    facts = _facts(graph, plan)
    facts.storage_bytes = measured["flash"]
    clock = profile.clock_mhz if profile else deployed["clock_mhz"]
    latency = latency_ms(measured["frontend_instructions"] + measured["network_instructions"],
                         measured["cycles_per_instruction"], clock)
    basis = "firmware under QEMU: data + bss (arena) + measured stack"
    checks = _device_checks(profile, facts, measured["ram"], set(), None) if profile else []
    checks += _flag_checks(facts, measured["ram"], max_flash, max_ram, max_macs)
    if max_latency_ms is not None:
        checks.append(Check("latency", max_latency_ms, latency, "--max-latency-ms",
                            f"{deployed['core']} at {clock:g} MHz, from the firmware's instructions"))
    return _report(folder, facts, plan, profile, checks, [], zipped_bytes=graph.zipped_bytes,
                   bytes_by_dtype=graph.bytes_by_dtype, graph="firmware", latency_ms=latency, latency_p90_ms=None,
                   measured_peak_bytes=None, ram_bytes=measured["ram"], ram_basis=basis, memory=None)


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
