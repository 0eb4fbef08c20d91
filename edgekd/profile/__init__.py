"""`edgekd profile`: storage, MACs, activation memory and latency of any ONNX model, against a device budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekd.profile.devices import DeviceProfile, load_device
from edgekd.profile.graph import load_model, parameter_count, storage_bytes
from edgekd.profile.memory import optimised_graph_run, plan_memory
from edgekd.profile.runtime import measure_latency


@dataclass
class Check:
    name: str  # "flash" or "ram"
    limit: int
    actual: int
    source: str  # where the limit comes from: a device budget or a command-line flag

    @property
    def passed(self) -> bool:
        return self.actual <= self.limit

    def describe(self) -> str:
        return f"{self.name}: {self.actual} B > {self.limit} B ({self.source})"


@dataclass
class ProfileReport:
    model: str
    params: int
    storage_bytes: int
    activation_bytes: int  # peak live bytes over onnxruntime's optimised graph
    largest_tensor_bytes: int
    macs: int
    latency_ms: float | None
    latency_p90_ms: float | None
    device: str | None
    checks: list[Check] = field(default_factory=list)
    top_nodes: list[dict] = field(default_factory=list)

    @property
    def violations(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def fits(self) -> bool:
        return not self.violations

    def to_json(self) -> dict:
        """The stable contract for CI (documented in README)."""
        return {
            "model": self.model,
            "params": self.params,
            "storage_bytes": self.storage_bytes,
            "activation_bytes": self.activation_bytes,
            "largest_tensor_bytes": self.largest_tensor_bytes,
            "macs": self.macs,
            "latency_ms": self.latency_ms,
            "latency_p90_ms": self.latency_p90_ms,
            "device": self.device,
            "fits": self.fits,
            "checks": [asdict(c) | {"passed": c.passed} for c in self.checks],
            "violations": [c.describe() for c in self.violations],
        }


def analyse_graph(model_path: Path) -> dict:
    """Params, storage, MACs and activation memory: the graph-only part, shared with `distill`'s size table."""
    model = load_model(model_path)
    run = optimised_graph_run(Path(model_path))
    plan = plan_memory(run)
    heaviest = sorted(plan.steps, key=lambda s: s.live_bytes, reverse=True)[:5]
    return {
        "params": parameter_count(model),
        "storage_bytes": storage_bytes(model_path, model),
        "activation_bytes": plan.peak_bytes,
        "largest_tensor_bytes": plan.largest_tensor_bytes,
        "macs": sum(s.macs for s in plan.steps),
        "top_nodes": [{"node": s.name, "op": s.op_type, "live_bytes": s.live_bytes} for s in heaviest],
    }


def profile_model(
    model_path: Path,
    device: str | DeviceProfile | None = None,
    max_flash: int | None = None,
    max_ram: int | None = None,
    latency_runs: int = 20,
) -> ProfileReport:
    facts = analyse_graph(model_path)
    profile = load_device(device) if isinstance(device, str) else device
    checks = []
    if profile is not None:
        checks.append(Check("flash", profile.flash_budget, facts["storage_bytes"], f"{profile.name} flash budget"))
        checks.append(Check("ram", profile.ram_budget, facts["activation_bytes"], f"{profile.name} RAM budget"))
    if max_flash is not None:
        checks.append(Check("flash", max_flash, facts["storage_bytes"], "--max-flash"))
    if max_ram is not None:
        checks.append(Check("ram", max_ram, facts["activation_bytes"], "--max-ram"))
    latency = measure_latency(Path(model_path), profile.threads if profile else 1, runs=latency_runs) \
        if latency_runs > 0 else None
    return ProfileReport(
        model=str(model_path),
        params=facts["params"],
        storage_bytes=facts["storage_bytes"],
        activation_bytes=facts["activation_bytes"],
        largest_tensor_bytes=facts["largest_tensor_bytes"],
        macs=facts["macs"],
        latency_ms=latency["median_ms"] if latency else None,
        latency_p90_ms=latency["p90_ms"] if latency else None,
        device=profile.name if profile else None,
        checks=checks,
        top_nodes=facts["top_nodes"],
    )
