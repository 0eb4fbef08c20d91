"""A runtime's own model file (`.tflite`, `.pte`) read into the planner's graph: what the profiler needs from it,
whichever the format."""

from __future__ import annotations

from dataclasses import dataclass

from edgekd.profile.memory import GraphRun


@dataclass(frozen=True)
class FileGraph:
    """What the profiler reads from a runtime's own model file."""

    run: GraphRun
    bytes_by_dtype: dict[str, int]  # constant bytes by element type (numpy names)
    weight_dtypes: set[str]  # of the weights multiply-accumulate ops read (not biases, shapes or axes)
    params: int  # elements of weights and biases
    frontend_params: int  # of which: constants only the log-mel front-end reads (up to its first LOG)
    frontend_bytes: int


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
