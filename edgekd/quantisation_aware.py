"""Quantisation-aware fine-tuning (`train: {qat: {epochs: N}}`): after training, the student's network (after its
front-end, which stays FP32 and frozen: the INT8 files take the log-mel) gets fake quantisation through PyTorch's
PT2E flow (torch.export, then torchao's `prepare_qat_pt2e`) and is trained on, against the same targets, with the
same trainer (checkpointed each epoch, resumable, seeded).

Why PT2E with ExecuTorch's XNNPACK quantizer: it is the flow ExecuTorch's Cortex-M quantiser and torchao use, and
XNNPACK's int8 configuration is TFLite's quantisation scheme — int8 weights symmetric per output channel with
BatchNorm folded into the convolution (simulated while training), int8 activations affine per tensor at the output
of each convolution + BatchNorm + ReLU group, pooling and addition — so the rounding trained under is the rounding
TFLM, onnxruntime's QDQ and CMSIS-NN apply. The INT8 exports quantise the fine-tuned weights with each format's own
quantiser, calibrated as for post-training quantisation; the weights' per-channel scales are the same rule
(max |w| / 127 after folding), the activation ranges are measured again on the calibration windows."""

from __future__ import annotations

import copy

import torch
from torch import nn

from edgekd.extras import require

NEEDED_FOR = "train: {qat: ...} (quantisation-aware fine-tuning)"


def _require(module: str):
    return require(module, NEEDED_FOR, "executorch")


class QuantisationAwareStudent(nn.Module):
    """The student's front-end (FP32, frozen) in front of its network with fake quantisation: what QAT trains."""

    def __init__(self, student: nn.Module, example_logmel: torch.Tensor):
        super().__init__()
        pt2e = _require("torchao.quantization.pt2e")
        quantize = _require("torchao.quantization.pt2e.quantize_pt2e")
        xnnpack = _require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")
        self.frontend, self.embedding_dim = copy.deepcopy(student.frontend), student.embedding_dim
        for parameter in self.frontend.parameters():
            parameter.requires_grad_(False)
        from edgekd.students.base import Network

        network = Network(copy.deepcopy(student)).train()
        # a dynamic batch: the trainer's batches and the validation pass differ in size
        exported = torch.export.export(network, (example_logmel[:2],),
                                       dynamic_shapes=({0: torch.export.Dim("batch")},))
        quantizer = xnnpack.XNNPACKQuantizer().set_global(
            xnnpack.get_symmetric_quantization_config(is_per_channel=True, is_qat=True))
        self.network = quantize.prepare_qat_pt2e(exported.module(check_guards=False), quantizer)
        pt2e.allow_exported_model_train_eval(self.network)  # the trainer's .train()/.eval() switch BN and dropout

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.network(self.frontend(audio.float()))

    def trained_student(self, student: nn.Module) -> nn.Module:
        """A copy of `student` holding the fine-tuned weights (the fake quantisers' state left out): what the INT8
        exports quantise."""
        trained = copy.deepcopy(student)
        prefix = "student."  # the network was exported from Network(student)
        weights = {key.removeprefix(prefix): value for key, value in self.network.state_dict().items()
                   if key.startswith(prefix)}
        trained.load_state_dict(trained.state_dict() | weights)
        return trained.eval()
