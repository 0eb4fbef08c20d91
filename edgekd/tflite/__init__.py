"""TensorFlow Lite for Microcontrollers: `.tflite` files converted from the student (the `tflite` extra), run and
measured on the host by the TFLM interpreter itself."""

from edgekd.tflite.convert import convert_tflite, quantize_tflite
from edgekd.tflite.micro import TflmArena, run_tflite, tflm_arena

__all__ = ["TflmArena", "convert_tflite", "quantize_tflite", "run_tflite", "tflm_arena"]
