"""What every model format offers the export stage and the profiler: one `Format` per folder under
`edgekd/formats/` (found through `formats/registry.py`), and the values that pass between them. The stages call
these and nothing format-specific, so a format is one folder and its registry entry."""

from __future__ import annotations

import functools
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.formats.memory import GraphRun, plan_memory
from edgekd.formats.options import ExportOptions
from edgekd.formats.registry import DEFAULT, FORMATS, MEMORY_KEYS, RUNTIMES
from edgekd.students.base import Network


@dataclass(frozen=True)
class RuntimeMemory:
    """A runtime's own figure for the RAM a model needs (measured, planned by its compiler, or predicted): what RAM
    budgets judge where it is known."""

    key: str  # its key in export.json's variants and in profile's JSON (one per format, see MEMORY_KEYS)
    figure: dict | list[int]  # as the runtime gives it
    total: int
    basis: str  # the report's ram_basis
    title: str  # its row in the profile table
    parts: tuple[tuple[str, int], ...] = ()  # the rows under it
    detail: str = ""  # the RAM check's detail


def memory_json(memory: RuntimeMemory | None) -> dict:
    """Every format's memory key, null but for the runtime's figure the model has (the JSON contract keeps them
    all)."""
    return {key: None for key in MEMORY_KEYS} | ({memory.key: memory.figure} if memory else {})


@dataclass
class Variant:
    """One exported file and its verdict at the accuracy gate."""

    file: str
    precision: str
    size_bytes: int
    max_abs_diff: float
    mean_cosine: float
    p1_cosine: float  # 1st percentile over held-out windows
    min_cosine: float
    accuracy: float | None = None
    accuracy_drop: float | None = None  # points below FP32 PyTorch
    missed: list[str] = field(default_factory=list)
    memory: RuntimeMemory | None = None  # the runtime's own memory figure, for formats whose runtime gives one

    @property
    def passed(self) -> bool:
        return not self.missed

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "memory"}
        return data | memory_json(self.memory) | {"passed": self.passed}


@dataclass(frozen=True)
class DeviceBudget:
    """What a device leaves a model (`edgekd export --device`): the export stage reads the device's profile, the
    formats judge their files on these figures as `edgekd profile` would."""

    device: str
    runtime: str  # the device's runtime, whose memory figure judges RAM where the file's own runtime has none
    ram: int
    flash: int
    dtypes: tuple[str, ...]  # the weight types it computes in


class Gate(Protocol):
    """The export stage's accuracy gate: held-out windows, and a variant judged from its outputs on them."""

    inputs: np.ndarray

    def score(self, path: Path, precision: str, outputs: np.ndarray) -> Variant: ...


@dataclass
class ExportJob:
    """One `edgekd export`: what every format it writes is given, and what each adds."""

    module: nn.Module  # the student, or its network after the front-end (--frontend exclude)
    input_name: str
    calibration: np.ndarray  # windows shaped like the module's input
    # calibration and gate windows after the front-end (what INT8 microcontroller files take), read when first asked
    network_inputs: Callable[[], tuple[np.ndarray, np.ndarray]]
    stage: Path  # where files are written before they are published
    gate: Gate
    options: ExportOptions
    metadata: dict[str, str]
    files: list[Path] = field(default_factory=list)
    variants: list[Variant] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    fp32_layers: list[str] = field(default_factory=list)  # kept FP32 by a mixed-precision fallback
    budget: DeviceBudget | None = None  # --device: what a mixed-precision file must still fit
    # file name → {layer: precision} of the files whose layers do not all have one precision
    layer_precision: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def example(self) -> torch.Tensor:
        return torch.from_numpy(self.calibration[:1])

    def network(self) -> Network:
        """The student after its front-end (what microcontroller files hold)."""
        return self.module if isinstance(self.module, Network) else Network(self.module)

    def add(self, path: Path, variant: Variant) -> None:
        self.files.append(path)
        self.variants.append(variant)


@dataclass(frozen=True)
class FileGraph:
    """What the profiler reads from a model file, whichever the format."""

    run: GraphRun
    kind: str  # the report's graph: "optimised", "raw", "static" (shapes inferred, too large to run), or the format
    bytes_by_dtype: dict[str, int]  # constant bytes by element type (numpy names), largest first
    weight_dtypes: set[str]  # of the weights multiply-accumulate ops read (not biases, shapes or axes)
    params: int  # elements of weights and biases
    frontend_params: int  # of which: constants only the log-mel front-end reads (up to its first LOG)
    frontend_bytes: int
    storage_bytes: int
    zipped_bytes: int
    knowledge_base_bytes: int = 0  # of the storage: a retrieval knowledge base shipped inside the model
    # the exported graph's operators ({"node", "op"}), for a device runtime's operator set to judge; None where the
    # runtime itself checks them (TFLM loading the file) or links them into its build (ExecuTorch)
    operators: list[dict] | None = None


class Format(ABC):
    """One model format: the files `edgekd export --format NAME` writes, and how `edgekd profile` reads them."""

    name: ClassVar[str]  # --format NAME, and the suffix of its files
    # the ONNX ops the device runtimes that load its files execute (None: any), for a profile of an ONNX file
    operators: ClassVar[frozenset[str] | None] = None
    microcontroller: ClassVar[bool] = False  # its runtimes run on microcontrollers

    @abstractmethod
    def convert(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        """An FP32 file of `module` for inputs shaped like `example`."""

    @abstractmethod
    def run(self, path: Path, inputs: np.ndarray) -> np.ndarray:
        """The file's outputs for each row of `inputs`, in its runtime on this host (what the gate judges)."""

    @abstractmethod
    def export(self, job: ExportJob) -> None:
        """This format's files of `job.module`, written into `job.stage`, each scored by the gate and added."""

    @abstractmethod
    def read(self, path: Path, raw: bool = False) -> FileGraph:
        """The file's graph for the profiler; `raw`: as exported, not as the runtime optimises it."""

    def memory(self, path: Path, own: bool = False) -> RuntimeMemory | None:
        """The runtime's own memory figure for the file, where its runtime gives one; `own`: a file this process
        wrote and ran (no need to fence a runtime's kernels off in a child process)."""
        return None

    def predicted_memory(self, run: GraphRun) -> RuntimeMemory | None:
        """What this format's runtime would need for a model read from another format (a device of its runtime
        profiled on an ONNX file), where it can be predicted."""
        return None

    def latency(self, path: Path, threads: int, runs: int) -> tuple[dict | None, int | None]:
        """Host latency over `runs` timed runs and the runtime's measured peak bytes; None where host kernels say
        nothing of the device."""
        return None, None

    def check_profile(self, path: Path, runtime: str | None, device: str | None,
                      max_latency_ms: float | None) -> None:
        """Refuse, before any work, what a profile of this format cannot judge."""

    def ram_needed(self, path: Path, runtime: str | None, graph: FileGraph | None = None
                   ) -> tuple[int, RuntimeMemory | None]:
        """The RAM a device of `runtime` needs for the file (`graph`: as read already), as `edgekd profile` judges
        it: its runtime's own figure, else what the device's runtime is predicted to need for its graph, else its
        peak live activations."""
        memory = self.memory(path)
        graph = graph or (self.read(path) if memory is None else None)
        if memory is None and runtime is not None:  # a microcontroller runtime's RAM is its whole arena
            runner = format_running(runtime)
            memory = runner.predicted_memory(graph.run) if runner is not None else None
        return (memory.total, memory) if memory else (plan_memory(graph.run).peak_bytes, None)

    def over_budget(self, path: Path, budget: DeviceBudget) -> list[str]:
        """What of the device's budget the file exceeds, judged as `edgekd profile` judges it: flash (its stored
        bytes), RAM (`ram_needed`) and the types of its weights."""
        graph = self.read(path)
        ram, _ = self.ram_needed(path, budget.runtime, graph)
        over = [f"{what} {used:,} B > {budget.device}'s {limit:,} B budget" for what, used, limit in
                (("flash", graph.storage_bytes, budget.flash), ("RAM", ram, budget.ram)) if used > limit]
        foreign = sorted(graph.weight_dtypes - set(budget.dtypes))
        return over + ([f"{', '.join(foreign)} weights: {budget.device} computes in "
                        f"{', '.join(sorted(budget.dtypes))}"] if foreign else [])

    def scored(self, job: ExportJob, path: Path, precision: str, inputs: np.ndarray) -> Variant:
        """`path` run on `inputs` in its runtime and scored by the gate, with the runtime's memory figure."""
        variant = job.gate.score(path, precision, self.run(path, inputs))
        variant.memory = self.memory(path, own=True)
        return variant


def refuse_host_latency(path: Path, max_latency_ms: float | None) -> None:
    """A microcontroller file's host kernels say nothing of the device's speed: a latency budget is refused."""
    if max_latency_ms is not None:
        raise EdgekdError(f"{path}: --max-latency-ms: a {path.suffix.lower()} is timed on the device, not on this "
                          f"host (its host kernels say nothing of a microcontroller's speed); drop the flag")


def frontend_constants(run: GraphRun, log_op: str) -> set[str]:
    """Constants read only by the log-mel front-end: the first `log_op` and the operators it depends on."""
    logs = [index for index, node in enumerate(run.nodes) if node.op_type == log_op]
    if not logs:
        return set()
    producer = {out: index for index, node in enumerate(run.nodes) for out in node.outputs}
    inside, stack = set(), [logs[0]]
    while stack:
        index = stack.pop()
        if index not in inside:
            inside.add(index)
            stack.extend(producer[i] for i in run.nodes[index].inputs if i in producer)
    read_inside = {i for index in inside for i in run.nodes[index].inputs} & run.initializers
    read_outside = {i for index, node in enumerate(run.nodes) if index not in inside for i in node.inputs}
    return read_inside - read_outside


@functools.cache
def format_named(name: str) -> Format:
    module, _, cls = FORMATS[name].builder.partition(":")
    return getattr(importlib.import_module(module), cls)()


def format_of(path: Path) -> Format:
    """The format of a model file, by its suffix (model.TFLITE is a .tflite too)."""
    suffix = path.suffix.lower().lstrip(".")
    return format_named(suffix if suffix in FORMATS else DEFAULT)


def format_running(runtime: str) -> Format | None:
    """The format whose files a device runtime loads."""
    return format_named(RUNTIMES[runtime]) if runtime in RUNTIMES else None
