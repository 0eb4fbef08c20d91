"""The precision of each layer of a `.tflite`, chosen by fidelity within a device's budget: when plain INT8 misses
the accuracy gate, layers go to int16 activations (TFLM's int16x8 kernels), then to FP32, in the order of the
cosine each costs at int8, and the first assignment that passes the gate and still fits the device is kept.

Why ranked inside an int16x8 model: a layer promoted alone in an int8 model still reads its input at int8 (the
quantizer requantises in front of it), so its gain says little; the cosine a layer loses when it alone is int8
among int16x8 layers is its own. Every assignment is measured, never estimated: one int16x8 layer among int8 ones
measured a larger TFLM arena than the whole model at int16x8 (the requantised copies), so RAM is not monotone in
the number of promoted layers and an assignment over budget does not end the walk."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.formats.base import Variant
from edgekd.formats.tflite.export import SHAPE_ONLY, Layer, Precision, TfliteQuantizer
from edgekd.formats.tflite.runtime import run_tflite
from edgekd.metrics import cosine_rows


@dataclass
class Tried:
    """One assignment measured: the layers not at int8, and its verdict (a file over budget is not run at the
    gate: its cosine is None)."""

    layers: dict[str, Precision]
    mean_cosine: float | None
    missed: list[str]


@dataclass
class PrecisionChoice:
    """What the walk found: the file written (None if no assignment passed and fitted), its variant, its layers'
    precisions (label → precision of every layer not at int8), and every assignment tried."""

    path: Path | None
    variant: Variant | None
    layers: dict[str, Precision]
    tried: list[Tried] = field(default_factory=list)

    def describe(self) -> str:
        """The layers not at int8, by precision: "int16x8: input, #5 DEPTHWISE_CONV_2D; fp32: #7 CONV_2D"."""
        return "; ".join(f"{precision}: {', '.join(label for label, p in self.layers.items() if p == precision)}"
                         for precision in ("int16x8", "fp32") if precision in self.layers.values())


def layer_ranking(quantizer: TfliteQuantizer, calibration: np.ndarray, scratch: Path) -> list[tuple[Layer, float]]:
    """The layers an assignment may change (not shape-only, not the FP32 tail), with the mean cosine each loses
    at int8 among int16x8 layers on the calibration windows; largest loss first."""
    reference = run_tflite(quantizer.fp32, calibration)
    layers = [layer for layer in quantizer.layers if layer.op not in SHAPE_ONLY and layer != quantizer.tail]
    losses = []
    for layer in layers:
        probe = quantizer.quantize(scratch / "sensitivity.tflite", "int16x8", {layer.index: "int8"})
        losses.append((layer, float(1 - cosine_rows(run_tflite(probe, calibration), reference).mean())))
    return sorted(losses, key=lambda item: -item[1])


def assignments(ranking: list[tuple[Layer, float]]) -> list[tuple[Precision, dict[int, Precision]]]:
    """In the order tried: the k most sensitive layers at int16x8 (the rest int8), then every layer at int16x8 and
    the k most sensitive in FP32."""
    order = [layer.index for layer, _ in ranking]
    return ([("int8", {index: "int16x8" for index in order[:count]}) for count in range(1, len(order) + 1)]
            + [("int16x8", {index: "fp32" for index in order[:count]}) for count in range(1, len(order) + 1)])


def choose_precision(quantizer: TfliteQuantizer, out: Path, calibration: np.ndarray, score: Callable[[Path], Variant],
                     over_budget: Callable[[Path], list[str]] | None) -> PrecisionChoice:
    """The first assignment whose file is not `over_budget` (None: no device named) and passes `score`'s gate,
    written to `out`."""
    tried: list[Tried] = []
    with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
        ranking = layer_ranking(quantizer, calibration, Path(scratch))
        for activations, layers in assignments(ranking):
            path = quantizer.quantize(Path(scratch) / out.name, activations, layers)
            labels = {layer.label: layers.get(layer.index, activations) for layer, _ in ranking
                      if layers.get(layer.index, activations) != "int8"}
            over = over_budget(path) if over_budget else []
            variant = None if over else score(path)
            tried.append(Tried(labels, variant.mean_cosine if variant else None, over or variant.missed))
            if variant is not None and variant.passed:
                path.replace(out)
                return PrecisionChoice(out, variant, labels, tried)
    return PrecisionChoice(None, None, {}, tried)
