"""The `student:` section: a family and its sizes, on the student's own log-mel front-end (plain pydantic)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Union

from pydantic import Field

from edgekd.schema import StrictModel


class FrontendKeys(StrictModel):
    # what `edgekd export --format` can write for the family, and of those in INT8 too (checked by the tests of each
    # format, both ways)
    formats: ClassVar[tuple[str, ...]] = ("onnx", "tflite", "pte")
    int8_formats: ClassVar[tuple[str, ...]] = ("onnx", "tflite", "pte")

    sample_rate: int = Field(8000, ge=1000, le=96000)
    n_fft: int = Field(256, ge=16, le=8192, description="DFT size; its kernels take n_fft² values")
    hop_length: int = Field(160, ge=1)
    n_mels: int = Field(64, ge=4)
    top_db: float | None = Field(80.0, gt=0, description="dB range below each example's maximum; null: absolute dB")


# A family `edgekd search` explores defines `scaled(width, depth, **frontend)`: itself at `width` times its base
# channels with `depth` blocks (1-4), on the given front-end keys.


class SeaCnnConfig(FrontendKeys):
    name: Literal["sea_cnn"] = "sea_cnn"
    widths: list[int] = Field([8, 16, 32, 32], min_length=1, description="conv channels per block")
    convs_per_block: int = Field(1, ge=1, le=4)
    pool: Literal["max", "mean"] = "mean"
    base_channels: ClassVar[tuple[int, ...]] = (8, 32, 64, 128)  # the demo student's, at width 1

    @classmethod
    def scaled(cls, width: float, depth: int, **frontend: Any) -> SeaCnnConfig:
        return cls(**frontend, widths=[max(4, round(channels * width)) for channels in cls.base_channels[:depth]],
                   pool="mean")


class L3StudentConfig(FrontendKeys):
    name: Literal["l3"] = "l3"
    divisors: tuple[int, int, int, int] = Field((2, 2, 2, 8), description="of L3's 64/128/256/512 filters per block")


class DsCnnConfig(FrontendKeys):
    name: Literal["dscnn"] = "dscnn"
    channels: int = Field(64, ge=4)
    blocks: int = Field(4, ge=1)

    @classmethod
    def scaled(cls, width: float, depth: int, **frontend: Any) -> DsCnnConfig:
        return cls(**frontend, channels=max(4, round(cls.model_fields["channels"].default * width)), blocks=depth)


class MobileNetConfig(FrontendKeys):
    name: Literal["mobilenet"] = "mobilenet"
    width: float = Field(1.0, gt=0, description="channel multiplier")
    # (expansion, channels, repeats, stride) per stage, as MobileNetV2's table
    stages: list[tuple[int, int, int, int]] = [(1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2)]

    @classmethod
    def scaled(cls, width: float, depth: int, **frontend: Any) -> MobileNetConfig:
        return cls(**frontend, width=width, stages=cls.model_fields["stages"].default[:depth])


class TransformerConfig(FrontendKeys):
    formats: ClassVar[tuple[str, ...]] = ("onnx", "pte")  # TFLM has no GELU kernel
    # ExecuTorch 1.5.1's Cortex-M flow fails on it (int8 against int32 in its ReplaceScalarWithTensorArgPass)
    int8_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    name: Literal["transformer"] = "transformer"
    width: int = Field(64, ge=4, description="token width")
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1)
    patch_frames: int = Field(5, ge=1, description="log-mel frames per token")
    max_tokens: int = Field(64, ge=1, description="positions with a learned embedding")


StudentConfig = Union[SeaCnnConfig, L3StudentConfig, DsCnnConfig, MobileNetConfig, TransformerConfig]
