"""The README's figures, generated from the committed benchmark results (benchmarks/results/*.json).

Each table sits in README.md between `<!-- benchmark: NAME -->` and `<!-- /benchmark: NAME -->` and says under it
which command, commit, date and machine measured it.

    python benchmarks/readme.py            # rewrite the tables in README.md
    python benchmarks/readme.py --check    # exit 1 if README.md differs from what the results give
    python benchmarks/readme.py --stale    # list tables measured on older code than the code they measure
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from typing import Callable

from results import MEASURED_PATHS, RESULTS, ROOT

from edgekd.units import format_bytes

README = ROOT / "README.md"
_BLOCK = re.compile(r"(<!-- benchmark: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /benchmark: (?P=name) -->)", re.S)


def _load(name: str) -> dict:
    return json.loads((RESULTS / f"{name}.json").read_text())


def _provenance(record: dict) -> str:
    machine = record["machine"]
    gpus = ", ".join(machine["gpus"]) or "no GPU"
    dirty = " plus uncommitted changes" if record["uncommitted_changes"] else ""
    return (f"_Measured by `{record['command'].strip()}` on commit `{record['commit'][:10]}`{dirty} ({record['date']}): "
            f"{machine['cores']} cores, {machine['cpu']}, {machine['memory_gb']:g} GB, {gpus}; torch "
            f"{machine['torch']}, onnxruntime {machine['onnxruntime']}._\n")


def _cell(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _table(header: list[str], rows: list[list]) -> str:
    """A Markdown table: the header, its rule, and one line per row of cells."""
    def line(cells: list) -> str:
        return "|" + "|".join(f" {cell} " if cell != "" else " " for cell in cells) + "|\n"

    return line(header) + "|---" * len(header) + "|\n" + "".join(map(line, rows))


def methods_table(results: dict) -> str:
    rows = [[r["method"], _cell(r["fidelity_cosine"], ".3f"), _cell(r["fidelity_cka"], ".3f"),
             _cell(r["head_top1_agreement"], ".1%"), _cell(r["head_predictive_kl"], ".3f"),
             _cell(r["probe_accuracy"], ".1%"), _cell(r["probe_delta_points"], "+.1f"), _cell(r["head_accuracy"], ".1%"),
             f"{r['training_seconds']:.1f}", f"{r['storage_bytes'] / 1000:.1f} kB"] for r in results["rows"]]
    return _table(["method", "fidelity cos", "CKA", "head agree", "head KL", "probe acc", "Δ pts", "head acc",
                   "train s", "FP32 size"], rows).replace("%", " %")


def _latency(results: dict) -> str:
    base = results["median_ms"]["onnxruntime FP32"]
    return _table(["variant (1 thread, batch 1)", "median ms", "speed vs onnxruntime FP32"],
                  [[name, f"{ms:.3f}", f"{base / ms:.2f}x"] for name, ms in results["median_ms"].items()])


def _published(results: dict) -> str:
    rows = []
    for m in results["models"]:
        rows += [
            [m["model"], "parameters / FP32 weights (network)",
             f"{m['published_params'] / 1e6:.2f} M / {m['published_fp32_mb']} MB",
             f"{m['network_params'] / 1e6:.2f} M / {format_bytes(m['network_fp32_bytes'])}"],
            ["", "activation memory", m["published_activation"],
             f"largest tensor {format_bytes(m['largest_tensor_bytes'])}; working set "
             f"{format_bytes(m['working_set_bytes'])}; peak {format_bytes(m['peak_bytes'])}; arena "
             f"{format_bytes(m['arena_bytes'])}"],
            ["", "file (with the front-end's DFT/mel constants)", "",
             f"{format_bytes(m['storage_bytes'])} (constants {format_bytes(m['frontend_bytes'])}); profiled in "
             f"{m['profile_seconds']:.2f} s"],
        ]
    return _table(["model", "figure", "published", "edgekd"], rows)


def _cache_reuse(results: dict) -> str:
    students = results["students"]
    rows = [[index, f"{s['recompute_seconds']:.1f}", f"{s['shared_seconds']:.1f}",
             f"{s['recompute_rows']} / {s['shared_rows']}"] for index, s in enumerate(students)]
    recompute, shared = (sum(s[key] for s in students) for key in ("recompute_seconds", "shared_seconds"))
    rows.append([f"all ({results['windows']} windows each)", f"{recompute:.1f}", f"{shared:.1f}",
                 f"{recompute / shared:.2f}x less time with one cache"])
    return _table(["student", "recompute the teacher (s)", "shared cache (s)",
                   "teacher rows computed (recompute / shared)"], rows)


def _throughput(results: dict) -> str:
    rows = [[device, f"{row['pipeline_windows_per_s']:,.0f}", f"{row['training_windows_per_s']:,.0f}",
             f"{row['training_windows_per_s'] / row['pipeline_windows_per_s']:.4f}"]
            for device, row in results["devices"].items()]
    return _table(["device", "data pipeline alone (windows/s)", "training (windows/s)", "training / pipeline"], rows)


def _startup(results: dict) -> str:
    v, b = results["version_ms"], results["bad_recipe_ms"]
    return _table(["command (a fresh process each, median)", "ms"],
                  [["`edgekd --version`", f"{v:.0f}"], ["`edgekd distill BAD.yaml` (an unknown key)",
                                                        f"{b:.0f} ({b / v:.2f}x)"]])


def _scale(results: dict) -> str:
    rows = []
    for r in results["sizes"]:
        stages, per_hour = r["stages"], r["seconds_per_hour"]
        rows.append([f"{r['hours']:g} h ({r['files']:,} files)", f"{r['windows']:,}", f"{r['store_mb']:,.0f} MB",
                     f"{stages['store_build']['seconds']:.1f} ({per_hour['store_build']:.1f})",
                     f"{stages['teacher_inference']['seconds']:.1f} ({per_hour['teacher_inference']:.1f})",
                     f"{r['epoch_seconds']:.1f} ({per_hour['training_epoch']:.1f})",
                     " / ".join(f"{stages[k]['peak_rss_mb']:,}" for k in ("store_build", "teacher_inference",
                                                                          "distill"))])
    sonyc = results.get("sonyc_ust_layout")
    if sonyc:
        rows.append([f"SONYC-UST layout, {sonyc['hours']:g} h ({sonyc['clips']:,} clips), one cold `distill`",
                     f"{sonyc['windows']:,}", "", "", "", "", f"{sonyc['peak_rss_mb']:,} ({sonyc['seconds']:.0f} s)"])
    growth, fidelity = results["rss_growth"], results["fidelity_int16"]
    return (_table(["audio on disk", "windows", "store (int16, 2 rates)", "store build s (s/h)",
                    "teacher inference s (s/h)", "training epoch s (s/h)",
                    "peak RSS MB: data build / cache build / distill"], rows)
            + f"\nPeak RSS from {growth['from_hours']:g} h to {growth['to_hours']:g} h of audio: "
              f"{growth['percent']:+.1f} %. int16 store over the demo's {fidelity['clips']} clips: quantisation SNR "
              f"{fidelity['snr_db_min']:.1f} dB at worst (median {fidelity['snr_db_median']:.1f} dB); "
              f"{fidelity['teacher']} embeddings of windows read from the store vs from float32 audio: cosine "
              f"{fidelity['embedding_cosine_min']:.7f} at worst.\n")


def _runtimes(results: dict) -> str:
    return _table(["network (random weights)", "precision", "predicted head B", "predicted tail B",
                   "predicted total B", "TFLM head B", "TFLM tail B", "TFLM total B", "predicted vs TFLM",
                   ".tflite size", "ExecuTorch plan B (FP32 portable, INT8 Cortex-M)"],
                  [[r["model"], r["precision"].upper(), f"{r['predicted_head']:,}", f"{r['predicted_tail']:,}",
                    f"{r['predicted_total']:,}", f"{r['tflm_head']:,}", f"{r['tflm_tail']:,}", f"{r['tflm_total']:,}",
                    f"{r['predicted_total'] / r['tflm_total'] - 1:+.2%}", f"{r['tflite_bytes'] / 1e3:,.1f} kB",
                    f"{r['executorch_plan']:,}"] for r in results["rows"]])


def _mcu_gate(results: dict) -> str:
    gate = results["int8_gate"]
    return _table(["file (demo student, distilled)", "mean cosine", "min cosine", "probe lost", "gate", "size",
                   "runtime RAM"],
                  [[v["file"], f"{v['mean_cosine']:.4f}", f"{v['min_cosine']:.4f}",
                    f"{v['accuracy_drop']:+.2f} points", "pass" if v["passed"] else "MISSED",
                    f"{v['size_bytes'] / 1e3:,.1f} kB",
                    f"{v['tflm_arena']['total']:,} B (TFLM arena)" if v["tflm_arena"] else
                    f"{sum(v['executorch_plan']):,} B (ExecuTorch plan)"] for v in gate["variants"]])


def _evaluate_speed(results: dict) -> str:
    names = {"synthetic": "synthetic audio, CREPE tiny teacher (256-dim), one split",
             "esc10": "ESC-10 audio, SEA-64 teacher (64-dim), 5 folds"}
    rows = []
    for case, found in results["cases"].items():
        for scenario, medians in found["median_seconds"].items():
            rows.append([f"{names[case]}: {found['windows']:,} windows", scenario, f"{medians['baseline']:.1f} s",
                         f"{medians['current']:.1f} s", f"{found['speedup'][scenario]:.2f}x"])
    return _table(["run", "evaluated", f"commit {results['baseline_commit']} (before)", "this commit", "faster"], rows)


def _accuracy(value: list) -> str:
    mean, spread = value
    return f"{mean:.3f}" + ("" if spread is None else f" ± {spread:.3f}")


def _real(results: dict) -> str:
    rows = results["rows"]
    protocols = [key for key in rows[0] if key.endswith((" mlp", " logreg"))]
    return _table(["embedding", "dim", "storage", "activation memory", *protocols],
                  [[row["embedding"], str(row["dim"]),
                    "—" if row["storage_bytes"] is None else format_bytes(row["storage_bytes"]),
                    "—" if row["activation_bytes"] is None else format_bytes(row["activation_bytes"]),
                    *(_accuracy(row[key]) for key in protocols)] for row in rows])


def _search(results: dict) -> str:
    # the held-out sets' size, as measured on every student scored on the compared one (the ranking one is as large)
    scored = [trial for found in results["devices"].values()
              for trial in [*(s["chosen"] for s in found["searches"].values()), *found["presets"]]
              if trial and "compared" in trial]
    (windows,) = {trial["compared"]["windows"] for trial in scored}
    held_out = f"{windows:,}"
    rows = []
    for device, found in results["devices"].items():
        presets = {p["preset"]: p for p in found["presets"]}
        fitting = [f"{p['preset']} ({'front-end inside' if p['placement'] == 'include' else 'front-end outside'})"
                   for p in found["presets"] if p.get("profile", {}).get("fits")]

        def best(split: str, figures: Callable[[dict], str]) -> str:
            name = found["verdicts"][split]["best_preset"]
            return f"{name}: {figures(presets[name])}" if name else "—"

        def compared(trial: dict) -> str:
            return f"{trial['compared']['cosine']:.3f} / {trial['compared']['cka']:.3f}"

        for ranked, search in found["searches"].items():
            counts, chosen, profiled = search["counts"], search["chosen"], search["profile"]
            rows.append([
                device, "validation split (80 windows)" if ranked == "validation" else
                f"`--rank-on` {held_out} held-out windows (trains nothing more)",
                f"{counts['trained']} / {counts['stopped early']} / {counts['does not fit']}",
                f"{search['seconds'] / 60:.1f} min", f"`{chosen['name']}`" if chosen else "—",
                format_bytes(profiled["storage_bytes"]) if profiled else "—",
                format_bytes(profiled["ram_bytes"]) if profiled else "—",
                "fits (exit 0)" if profiled and profiled["fits"] else "does not fit",
                f"{chosen['test_cosine']:.3f} / {chosen['test_cka']:.3f}" if chosen else "—",
                compared(chosen) if chosen else "—",
                ", ".join(fitting) or "none",
                best("test", lambda p: f"{format_bytes(p['profile']['ram_bytes'])} RAM, {p['test_cosine']:.3f} / "
                                       f"{p['test_cka']:.3f}"),
                best("compared", compared)])
    return _table(["device", "ranked on", "candidates: trained / stopped early / never trained (cannot fit)", "wall",
                   "chosen student", "INT8 flash", "INT8 RAM", "`edgekd profile --device`",
                   "chosen: test cosine / CKA", f"chosen: cosine / CKA on {held_out} other held-out windows",
                   "shipped presets whose INT8 export fits", "best of them on test: RAM, cosine / CKA",
                   f"best of them on the {held_out} other windows: cosine / CKA"], rows)


# progress lines a command prints off a terminal (where a terminal draws bars): the README keeps the first and last
PROGRESS_LINES = ("· epoch ", "· teacher inference: ")


def _elide_progress(lines: list[str], keep: int = 2) -> list[str]:
    """Each run of progress lines of one kind cut to its first and last `keep`, with a line saying how many went."""
    out: list[str] = []
    index = 0
    while index < len(lines):
        kind = next((prefix for prefix in PROGRESS_LINES if lines[index].startswith(prefix)), None)
        end = index + 1
        while kind and end < len(lines) and lines[end].startswith(kind):
            end += 1
        run = lines[index:end]
        if kind and len(run) > 2 * keep + 1:
            run = [*run[:keep], f"· … {len(run) - 2 * keep} more such lines (a terminal draws a progress bar)",
                   *run[-keep:]]
        out += run
        index = end
    return out


def _demo(index: int) -> Callable[[dict], str]:
    def render(results: dict) -> str:
        run = results["commands"][index]
        output = "\n".join(_elide_progress([line.rstrip() for line in run["output"].rstrip().splitlines()]))
        return f"```\n$ {run['command']}\n{output}\n```\n"

    return render


def _quantisation(results: dict) -> str:
    built = any(r.get("firmware") for r in results["rows"])  # a run with --no-firmware has no such column
    rows = [[r["family"], r["quantisation"], f"{r['mean_cosine']:.5f}", f"{r['min_cosine']:.4f}",
             _cell(r["points_lost"], "+.2f"), _cell(r.get("teacher_cosine"), ".4f"), f"{r['flash']:,}", f"{r['arena']:,}",
             (f"{r['int16x8_layers']} int16x8, {r['fp32_layers']} FP32" if r["layers"] else "—"),
             "pass" if r["passed"] else "missed: " + "; ".join(r["missed"])] + ([_on_core(r.get("firmware"))] if built
                                                                                else [])
            for r in results["rows"]]
    return _table(["family", "quantisation", "mean cosine to its FP32", "min cosine", "probe points lost",
                   "cosine to the teacher", "flash B", "TFLM arena B", "layers not int8", "gate"]
                  + ([f"{results['device']} firmware: flash / RAM B, network instructions, latency ms"] if built else []),
                  rows)


def _search_real(results: dict) -> str:
    """Per device: the proven student and each fitting preset under the sea protocol, SEA-64 itself once."""
    rows = []
    for device, found in results["devices"].items():
        counts = found["search"]["counts"]
        for index, row in enumerate(found["rows"]):
            sea, profiled = row["sea"], row["profile"]
            if index == 0:
                rows.append([device, "SEA-64 (the teacher)", "—", "—", "—", "—", "—", _accuracy(sea["teacher"]["mlp"]),
                             _accuracy(sea["teacher"]["logreg"]), "—"])
            rows.append([device, row["student"] + (f" ({counts['trained']} trained, {counts['stopped early']} stopped "
                                                   f"early, {counts['does not fit']} never trained; "
                                                   f"{found['search']['seconds'] / 60:.0f} min)"
                                                   if row["student"].startswith("search") else ""),
                         row["rescue"] or "—", f"{profiled['storage_bytes']:,}", f"{profiled['ram_bytes']:,}",
                         "fits" if profiled["fits"] else "does not fit", _cell(row["held_out_cosine"], ".3f"),
                         _accuracy(sea["student"]["mlp"]), _accuracy(sea["student"]["logreg"]),
                         f"{_accuracy(sea['logmel_baseline']['mlp'])} / {_accuracy(sea['logmel_baseline']['logreg'])}"])
    return _table(["device", "student", "past plain INT8", "INT8 flash B", "RAM B", "`edgekd profile --device`",
                   f"cosine to the teacher on {results['ranked_on']}", "sea protocol: MLP accuracy",
                   "sea protocol: logistic", "its front-end's log-mel statistics: MLP / logistic"], rows)


def _on_core(firmware: dict | None) -> str:
    if not firmware:
        return "—"
    if "flash" not in firmware:
        return f"not built: {firmware['error']}"
    figures = (f"{firmware['flash']:,} / {firmware['ram']:,}, {firmware['network_instructions']:,}, "
               f"{firmware['latency_ms']:.0f}")
    return figures + (" (over the budget)" if "error" in firmware else "")


# table name in README.md → (results file, renderer)
def _firmware(results: dict) -> str:
    rows = [[r["model"], f"{r['device']} ({r['core']}, {r['clock_mhz']:g} MHz)", r["precision"].upper(),
             {"logmel": "log-mel in C", "audio": "in the model", "tensor": "none (MFCC / log-mel given)"}[r["input"]],
             f"{r['flash']:,}", f"{r['ram']:,} ({r['stack']:,})", f"{r['arena_used']:,} / {r['arena_tflm_x86']:,}",
             f"{r['frontend_instructions']:,}" if r["frontend_instructions"] else "—",
             f"{r['network_instructions']:,}", f"{r['latency_ms']:.1f}",
             f"{r['outputs_identical']}/{r['windows']}"
             + (f" (max abs diff {r['output_max_abs_diff']:.1e})" if r["outputs_identical"] < r["windows"] else "")
             + (f", C front-end ≤ {r['frontend_max_db_diff']:.1e} dB" if r["frontend_max_db_diff"] is not None else "")]
            for r in results["rows"]]
    calibration = results["calibration"]
    return (_table(["model", "device (core, clock)", "precision", "front-end", "flash B", "RAM B (of which stack)",
                    "arena on the core / on x86 B", "front-end instructions", "network instructions",
                    "latency ms at the device's clock", "outputs equal to TFLM x86"], rows)
            + "\nCycles per instruction, calibrated on the KWS DS-CNN row against MLPerf Tiny's published latency: "
            + "; ".join(f"{core}: {c['published_ms']} ms at {c['clock_mhz']:g} MHz on {c['board']} over "
                        f"{c['instructions']:,} instructions = {c['cycles_per_instruction']:.3f}"
                        for core, c in calibration.items()) + ".\n")


TABLES: dict[str, tuple[str, Callable[[dict], str]]] = {
    "demo-distill": ("demo", _demo(0)),
    "demo-export": ("demo", _demo(1)),
    "demo-profile": ("demo", _demo(2)),
    "methods": ("methods", methods_table),
    "latency": ("latency", _latency),
    "published-figures": ("published_figures", _published),
    "cache-reuse": ("cache_reuse", _cache_reuse),
    "throughput": ("throughput", _throughput),
    "startup": ("startup", _startup),
    "scale": ("scale", _scale),
    "runtimes": ("runtimes", _runtimes),
    "mcu-gate": ("runtimes", _mcu_gate),
    "evaluate-speed": ("evaluate_speed", _evaluate_speed),
    "real": ("real", _real),
    "search": ("search", _search),
    "firmware": ("firmware", _firmware),
    "quantisation": ("quantisation", _quantisation),
    "quantisation-esc10": ("quantisation-esc10", _quantisation),
    "search-esc10": ("search-esc10", _search_real),
}


def generate(text: str) -> str:
    """README text with every marked table rendered from its results file."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"README.md: unknown benchmark table '{name}'; known: {', '.join(TABLES)}")
        results_name, render = TABLES[name]
        record = _load(results_name)
        return f"{match.group(1)}{render(record['results'])}\n{_provenance(record)}{match.group(4)}"

    return _BLOCK.sub(replace, text)


def stale() -> list[str]:
    """Tables whose results were measured on uncommitted code, or on a commit older than the last change to what
    they measure (edgekd/, recipes/, devices/, pyproject.toml and the benchmark script itself)."""
    found = []
    for name, (results_name, _) in TABLES.items():
        record = _load(results_name)
        script = f"benchmarks/{record['command'].split()[1].split('/')[-1]}"
        changed = subprocess.run(["git", "rev-list", "--count", f"{record['commit']}..HEAD", "--",
                                  *MEASURED_PATHS, script], cwd=ROOT, capture_output=True, text=True)
        if record["uncommitted_changes"]:
            found.append(f"{name}: measured with uncommitted changes on {record['commit'][:10]}")
        elif changed.returncode != 0:
            found.append(f"{name}: measured on {record['commit'][:10]}, which this history does not contain")
        elif int(changed.stdout.strip() or 0) > 0:
            found.append(f"{name}: measured on {record['commit'][:10]}; {changed.stdout.strip()} later commit(s) "
                         f"change what it measures (re-run {script})")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md is not what the results give")
    mode.add_argument("--stale", action="store_true", help="list tables measured on older code")
    args = parser.parse_args()
    text = README.read_text()
    if args.stale:
        for line in stale():
            print(line)
        return
    generated = generate(text)
    if args.check:
        if generated != text:
            names = [m["name"] for m, n in zip(_BLOCK.finditer(text), _BLOCK.finditer(generated)) if m[0] != n[0]]
            sys.exit(f"README.md differs from benchmarks/results in: {', '.join(names)} "
                     "(python benchmarks/readme.py rewrites it)")
        return
    README.write_text(generated)


if __name__ == "__main__":
    main()
