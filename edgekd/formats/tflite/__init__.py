"""TensorFlow Lite for Microcontrollers: `.tflite` files converted from the student (the `tflite` extra), run and
measured on the host by the TFLM interpreter itself, and read by the profiler without it."""
