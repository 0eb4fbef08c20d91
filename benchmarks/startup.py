"""How fast a bad recipe is answered: `edgekd distill BAD.yaml` (an unknown key) beside `edgekd --version`, both as
a user runs them (a fresh Python process each), interleaved in one run. Validating a recipe imports no torch, so
the answer should cost little more than starting the CLI at all.

    python benchmarks/startup.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import save

BAD = """name: bad
data: {name: synthetic_urban}
teacher: {name: crepe}
student: {name: sea_cnn, widthz: [8, 16]}
"""


def _seconds(args: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-m", "edgekd", *args], cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bad.yaml").write_text(BAD)
        _seconds(["--version"], folder)  # warm the file cache for both
        version, bad = [], []
        for _ in range(args.repeats):
            version.append(_seconds(["--version"], folder))
            bad.append(_seconds(["distill", "bad.yaml"], folder))
    v, b = statistics.median(version), statistics.median(bad)
    print(f"edgekd --version          median {v * 1000:.0f} ms over {args.repeats} runs")
    print(f"edgekd distill bad.yaml   median {b * 1000:.0f} ms over {args.repeats} runs")
    print(f"ratio {b / v:.2f}x (target: at most 1.5x)")
    save("startup", args, {"version_ms": v * 1000, "bad_recipe_ms": b * 1000}, "startup.py")


if __name__ == "__main__":
    main()
