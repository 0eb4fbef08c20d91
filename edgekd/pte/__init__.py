"""ExecuTorch: `.pte` programs exported from the student (the `executorch` extra), run on the host by ExecuTorch's
own runtime, with the memory plan its compiler wrote into the program."""

from edgekd.pte.program import (
    convert_pte,
    pte_plan,
    quantize_pte,
    read_program,
    run_pte,
)

__all__ = ["convert_pte", "pte_plan", "quantize_pte", "read_program", "run_pte"]
