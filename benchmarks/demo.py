"""The README's three commands on the demo, as a user runs them (a fresh teacher cache, output at 160 columns):
`edgekd distill demo`, `edgekd export runs/demo`, `edgekd profile runs/demo/export/student.int8.onnx --device
stm32h7`. Records what each printed and how long it took, for the README's output blocks.

    python benchmarks/demo.py [--out runs/readme-demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from results import save

COMMANDS = (["distill", "demo"], ["export", "runs/demo"],
            ["profile", "runs/demo/export/student.int8.onnx", "--device", "stm32h7"])
CACHE = Path("/tmp/edgekd-readme-demo-cache")  # a fixed path, so the output names the same folder every time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/readme-demo"))
    args = parser.parse_args()
    for folder in (args.out, CACHE):
        shutil.rmtree(folder, ignore_errors=True)
    args.out.mkdir(parents=True)
    env = dict(os.environ, EDGEKD_CACHE_DIR=str(CACHE), COLUMNS="160", PYTHONWARNINGS="ignore")
    runs = []
    for command in COMMANDS:
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "edgekd", *command], cwd=args.out, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - began
        print(f"$ edgekd {' '.join(command)}  ({seconds:.1f} s, exit {done.returncode})\n{done.stdout}")
        runs.append({"command": f"edgekd {' '.join(command)}", "exit_code": done.returncode,
                     "seconds": round(seconds, 1), "output": done.stdout})
    save("demo", args, {"commands": runs}, "demo.py")


if __name__ == "__main__":
    main()
