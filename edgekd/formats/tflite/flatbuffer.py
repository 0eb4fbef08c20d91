"""A `.tflite` flatbuffer as objects, with the schema tflite-micro ships (the `tflite` extra): read, an operator's
type, written back."""

from __future__ import annotations

from types import ModuleType

from edgekd.extras import require


def schema(needed_for: str) -> ModuleType:
    return require("tflite_micro.tensorflow.lite.micro.python.schema_py_generated", needed_for, "tflite")


def unpack(flatbuffer: bytes, needed_for: str):
    """The model (schema.ModelT) a flatbuffer holds; raises whatever the generated reader raises on a corrupt one."""
    return schema(needed_for).ModelT.InitFromPackedBuf(flatbuffer, 0)


def op_type(model, operator, needed_for: str) -> str:
    """A builtin operator's name (CONV_2D, ...), or a custom one's code."""
    builtin = schema(needed_for).BuiltinOperator
    code = model.operatorCodes[operator.opcodeIndex]
    number = max(code.builtinCode, code.deprecatedBuiltinCode)  # codes above 127 live in builtinCode only
    name = next((name for name, value in vars(builtin).items() if value == number and not name.startswith("_")),
                "CUSTOM")
    return (code.customCode or b"CUSTOM").decode(errors="replace") if name == "CUSTOM" else name


def pack(model, needed_for: str) -> bytes:
    builder = require("flatbuffers", needed_for, "tflite").Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
