"""Fault injection from the environment: a full disk, read-only output, interrupts and concurrent commands. Each
gives the contract's exit code and one line naming the file, leaves every file that existed before unchanged, and
leaves no partial or staging file behind."""

import builtins
import contextlib
import errno
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import yaml
from conftest import MINI_RECIPE, ROOT, one_line, run_cli_here, snapshot
from onnx import TensorProto, helper

TINY_TEACHER = {"name": "python", "factory": "tiny_models:tiny_embedder", "sample_rate": 8000}
TINY_RECIPE = dict(MINI_RECIPE, teacher=TINY_TEACHER, train=dict(MINI_RECIPE["train"], epochs=1))
TESTS = str(Path(__file__).parent)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished run with an export: copied by each test that needs one, never changed."""
    folder = tmp_path_factory.mktemp("trained")
    recipe = folder / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(TINY_RECIPE))
    assert run_cli_here("distill", recipe, "--out", folder / "run").returncode == 0
    exported = run_cli_here("export", folder / "run", "--no-fp16")
    assert exported.returncode == 0, exported.stderr
    return folder


@pytest.fixture
def workspace(tmp_path, trained) -> Path:
    """A copy of the trained run and its recipe, a small model, and a CI config naming it."""
    shutil.copytree(trained, tmp_path, dirs_exist_ok=True)
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "model.onnx"))
    (tmp_path / "edgekd.yaml").write_text(yaml.safe_dump({"checks": [{"model": "model.onnx",
                                                                      "devices": ["stm32h7"]}]}))
    return tmp_path


def _commands(space: Path, target: Path) -> dict[str, tuple[list, dict]]:
    """Every command that writes, with its output (or cache) under `target`."""
    cache = {"EDGEKD_CACHE_DIR": str(target / "cache")}
    return {
        "distill": (["distill", space / "tiny.yaml", "--out", target / "run"], {}),
        "distill-cache": (["distill", space / "tiny.yaml", "--out", space / "new-run"], cache),
        "cache-build": (["cache", "build", space / "tiny.yaml"], cache),
        "data-build": (["data", "build", space / "tiny.yaml"], cache),
        "export": (["export", space / "run", "--out", target / "export", "--no-fp16"], {}),
        "tune": (["tune", space / "tiny.yaml", "--temperature", "2", "--alpha", "0.5", "--out", target / "tune"], {}),
        "profile-junit": (["profile", space / "model.onnx", "--runs", "0", "--junit", target / "r.xml"], {}),
        "profile-markdown": (["profile", space / "model.onnx", "--runs", "0", "--markdown", target / "r.md"], {}),
        "profile-plot": (["profile", space / "model.onnx", "--runs", "0", "--plot", target / "p.png"], {}),
        "check-baseline": (["check", space / "edgekd.yaml", "--runs", "0", "--write-baseline", target / "b.json"], {}),
    }


COMMANDS = ["distill", "distill-cache", "cache-build", "data-build", "export", "tune", "profile-junit",
            "profile-markdown", "profile-plot", "check-baseline"]


def _no_partial_files(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".probe")) or ".edgekd-" in p.name]
    assert not leftovers, leftovers


@contextlib.contextmanager
def _disk_full():
    """Every write past a file's first byte fails (EFBIG), as on a full disk: RLIMIT_FSIZE needs no root, and
    Python ignores SIGXFSZ, so the write fails instead of killing the process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


@pytest.mark.slow
@pytest.mark.parametrize("name", COMMANDS)
def test_a_full_disk_is_one_line_naming_the_file_and_nothing_is_lost(workspace, name):
    out = workspace / "out"
    out.mkdir()
    args, env = _commands(workspace, out)[name]
    before = snapshot(workspace)
    with _disk_full():
        result = run_cli_here(*args, PYTHONPATH=TESTS, **env)
    one_line(result, 2, "cannot write")  # naming the file: the output, or a temporary file profile needs
    after = snapshot(workspace)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing that was there changed
    _no_partial_files(workspace)


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only for this process (tests run as root, where chmod would not stop a write): opening
    for writing, creating, renaming or removing anything under it raises EROFS."""

    def protect(folder: Path) -> None:
        root = folder.resolve()

        def inside(path) -> bool:
            return isinstance(path, (str, bytes, os.PathLike)) and \
                Path(os.path.abspath(os.fsdecode(path))).is_relative_to(root)

        def refuse(path):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

        real_open, real_os_open = builtins.open, os.open

        def guarded_open(file, mode="r", *args, **kwargs):
            if set(mode) & set("wax+") and inside(file):
                refuse(file)
            return real_open(file, mode, *args, **kwargs)

        def guarded_os_open(path, flags, *args, **kwargs):
            if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and inside(path):
                refuse(path)
            return real_os_open(path, flags, *args, **kwargs)

        def guarded(real):
            def call(path, *args, **kwargs):
                if inside(path):
                    refuse(path)
                return real(path, *args, **kwargs)
            return call

        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(io, "open", guarded_open)
        monkeypatch.setattr(os, "open", guarded_os_open)
        for name in ("mkdir", "replace", "rename", "unlink", "rmdir"):
            monkeypatch.setattr(os, name, guarded(getattr(os, name)))

    return protect


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_output_is_one_line_naming_the_file(workspace, read_only, name):
    out = workspace / "out"
    out.mkdir()
    args, env = _commands(workspace, out)[name]
    before = snapshot(workspace)
    read_only(out)
    result = run_cli_here(*args, PYTHONPATH=TESTS, **env)
    one_line(result, 2, str(out))
    assert {k: v for k, v in snapshot(workspace).items() if k in before} == before
    assert not any(out.iterdir())


def test_evaluate_finds_it_cannot_write_before_doing_the_work(workspace, read_only, monkeypatch):
    import edgekd.stages.evaluate as evaluate

    def never(*args, **kwargs):
        raise AssertionError("evaluated before checking it could write evaluation.json")

    monkeypatch.setattr(evaluate, "evaluate_dataset", never)
    before = snapshot(workspace)
    read_only(workspace / "run")
    one_line(run_cli_here("evaluate", workspace / "run"), 2, "evaluation.json")
    assert snapshot(workspace) == before


# --- interrupts: each command says what it leaves; nothing finished is lost, no partial file stays -----------------

INTERRUPTS = {
    # command: (module attribute raising KeyboardInterrupt, args, what the line says)
    "export": ("edgekd.formats.onnx.format.quantize_static", ["export", "{run}", "--no-fp16"], "previous export"),
    "distill": ("edgekd.stages.distill.train_student", ["distill", "{recipe}", "--out", "{new}"], "--resume"),
    "distill-force": ("edgekd.stages.distill.train_student", ["distill", "{recipe}", "--out", "{run}", "--force"],
                      "--resume"),
    "cache-build": ("edgekd.stages.distill.teacher_embeddings", ["cache", "build", "{recipe}"], "shards are kept"),
    "evaluate": ("edgekd.stages.evaluate.evaluate_dataset", ["evaluate", "{run}"], "datasets finished"),
    "profile": ("edgekd.formats.onnx.format.measure_latency", ["profile", "{model}"], "run it again"),
    "check": ("edgekd.formats.onnx.format.measure_latency", ["check", "{config}"], "run it again"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(INTERRUPTS))
def test_an_interrupt_is_exit_130_with_what_the_command_leaves(workspace, monkeypatch, case):
    import importlib

    target, args, expected = INTERRUPTS[case]
    module, _, attribute = target.rpartition(".")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module(module), attribute, interrupt)
    paths = {"run": workspace / "run", "recipe": workspace / "tiny.yaml", "new": workspace / "new-run",
             "model": workspace / "model.onnx", "config": workspace / "edgekd.yaml"}
    before = snapshot(workspace)
    result = run_cli_here(*[a.format(**paths) if isinstance(a, str) else a for a in args], PYTHONPATH=TESTS)
    one_line(result, 130, "interrupted:", expected)
    assert {k: v for k, v in snapshot(workspace).items() if k in before} == before
    _no_partial_files(workspace)


@pytest.mark.slow
def test_an_export_killed_while_publishing_leaves_no_report_describing_other_files(workspace, monkeypatch):
    """Publishing is a few renames with signals held back, so only a kill can stop it there: export.json is
    removed first and written last, so it never lists files that are not the ones beside it."""
    import edgekd.stages.export as export

    def killed(*args, **kwargs):
        raise SystemExit(137)

    monkeypatch.setattr(export, "write_json", killed)
    with pytest.raises(SystemExit):
        export.export_run(workspace / "run", workspace / "run" / "export")
    assert not (workspace / "run" / "export" / "export.json").exists()
    _no_partial_files(workspace / "run")


def _slow_profile(tmp_path: Path, **popen) -> subprocess.Popen:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return subprocess.Popen([sys.executable, "-m", "edgekd", "profile", str(path), "--runs", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, **popen)


@pytest.mark.slow
@pytest.mark.parametrize("sig, ignored_by_parent", [(signal.SIGINT, False), (signal.SIGTERM, False),
                                                    (signal.SIGINT, True)])
def test_a_real_signal_interrupts_even_when_the_shell_ignored_sigint(tmp_path, sig, ignored_by_parent):
    """A shell starts a script's background jobs with SIGINT ignored: `edgekd … &` then `kill -INT` must still stop
    it; SIGTERM (a cancelled CI job) stops it the same way."""
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignored_by_parent else None
    process = _slow_profile(tmp_path, preexec_fn=ignore)
    time.sleep(4)  # in its latency loop by now
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted:") and "Traceback" not in stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_command_finished_leaves_its_exit_code(tmp_path, sig):
    """A signal while Python shuts down (here: from an atexit hook, after the command's work) died of the signal,
    exit 143 with no line; the command had finished, so its own exit code stands."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "m.onnx"))
    script = (f"import atexit, os, sys; atexit.register(os.kill, os.getpid(), {int(sig)}); "
              f"sys.argv = ['edgekd', 'profile', {str(tmp_path / 'm.onnx')!r}, '--runs', '0']; "
              "from edgekd.cli import run; run()")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, (done.returncode, done.stderr)


# --- concurrent commands on the same files ---------------------------------------------------------------------------

def _write_often(path: str, text: str) -> None:
    from edgekd.files import write_text

    for _ in range(300):
        write_text(Path(path), text)


def test_processes_writing_the_same_file_at_once_each_succeed_and_one_wins_whole(tmp_path):
    # torchrun ranks write the same store.json; a shared temporary name made one rank's rename fail (exit 2)
    import multiprocessing

    path = tmp_path / "store.json"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_often, args=(str(path), text * 4096)) for text in "ab"]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)
    assert [writer.exitcode for writer in writers] == [0, 0]
    assert path.read_text() in ("a" * 4096, "b" * 4096)
    assert [p.name for p in tmp_path.iterdir()] == ["store.json"]


def test_temporaries_of_killed_writers_are_removed_and_a_running_writers_kept(tmp_path):
    from edgekd.files import remove_stale_temporaries

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead, running = tmp_path / f"shard-1.npy.{finished.pid}.tmp", tmp_path / f"shard-2.npy.{os.getpid()}.tmp"
    for path in (dead, running, tmp_path / "shard-3.npy"):
        path.write_bytes(b"partial")
    remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([running.name, "shard-3.npy"])


@pytest.mark.slow
def test_concurrent_cache_builds_and_exports_leave_consistent_files(workspace):
    cache = str(workspace / "shared-cache")
    builds = [subprocess.Popen([sys.executable, "-m", "edgekd", "cache", "build", str(workspace / "tiny.yaml")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, EDGEKD_CACHE_DIR=cache, PYTHONPATH=TESTS)) for _ in range(2)]
    exports = [subprocess.Popen([sys.executable, "-m", "edgekd", "export", str(workspace / "run"), "--no-fp16"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for process in builds + exports:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    listed = run_cli_here("cache", "ls", "--verify", EDGEKD_CACHE_DIR=cache)
    assert "verified" in listed.stdout and "damaged" not in listed.stdout
    report = yaml.safe_load((workspace / "run" / "export" / "export.json").read_text())
    for variant in report["variants"]:
        assert (workspace / "run" / "export" / variant["file"]).stat().st_size == variant["size_bytes"]
    _no_partial_files(workspace / "run")
    assert np.isfinite([v["mean_cosine"] for v in report["variants"]]).all()


@pytest.mark.slow
def test_the_next_export_removes_a_killed_exports_staging_folder_only(workspace):
    export = workspace / "run" / "export"
    killed = export / ".edgekd-export-999999999-abc"  # no such process
    running = export / f".edgekd-export-{os.getpid()}-def"
    for folder in (killed, running):
        folder.mkdir()
        (folder / "student.onnx").write_bytes(b"partial")
    assert run_cli_here("export", workspace / "run", "--no-fp16").returncode == 0
    assert not killed.exists() and running.exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "truncated", "foreign"])
@pytest.mark.parametrize("name", ["reduction.npz", "checkpoint.pt"])
def test_a_run_missing_or_with_a_damaged_file_is_one_line_naming_it(workspace, name, damage):
    path = workspace / "run" / name
    if damage == "missing":
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(path.read_bytes()[:40] if damage == "truncated" and path.exists() else b"not this file")
    before = snapshot(workspace)
    args = ["evaluate", workspace / "run"] if name == "reduction.npz" else \
        ["distill", workspace / "tiny.yaml", "--out", workspace / "run", "--resume"]
    result = run_cli_here(*args, PYTHONPATH=TESTS)
    if name == "checkpoint.pt" and damage == "missing":
        assert result.returncode == 0, result.stderr  # a finished run: --resume has nothing left to do
        return
    one_line(result, 2, name)
    assert snapshot(workspace) == before


# --- a hostile user's battery (issue 28): each case failed on 8037ad4 -------------------------------------------------

def test_a_run_whose_reduction_is_not_finite_is_refused_when_read(workspace):
    reduction = workspace / "run" / "reduction.npz"
    with np.load(reduction) as stored:
        arrays = {key: stored[key] for key in stored}
    arrays["mean"] = np.full_like(arrays["mean"], np.nan)
    np.savez(reduction, **arrays)
    before = snapshot(workspace)
    one_line(run_cli_here("evaluate", workspace / "run", PYTHONPATH=TESTS), 2, "reduction.npz", "non-finite")
    assert snapshot(workspace) == before and not (workspace / "run" / "evaluation.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("label, why", [("dog", "1 class labelled"), ("", "no labels")])
def test_evaluate_on_data_a_probe_cannot_learn_from_says_so(workspace, label, why):
    """One class, or no label at all (scikit-learn raised on both): fidelity is measured, the probe is not."""
    clips = workspace / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for index, split in enumerate(["train", "train", "val", "val", "test", "test"]):
        soundfile.write(clips / f"c{index}.wav", 0.1 * rng.standard_normal(8000).astype(np.float32), 8000)
        rows.append(f"c{index}.wav,{label},{split}\n")
    (clips / "labels.csv").write_text("path,label,split\n" + "".join(rows))
    result = run_cli_here("evaluate", workspace / "run", "--data", clips, PYTHONPATH=TESTS)
    assert result.returncode == 0, result.stderr
    other = json.loads((workspace / "run" / "evaluation.json").read_text())["out_of_domain"][str(clips)]
    assert other["rounds"] is None and why in other["no_probe"] and other["fidelity_windows"] == 6


def test_a_search_on_a_full_disk_is_one_line_and_leaves_no_study(workspace, monkeypatch):
    pytest.importorskip("optuna")
    import edgekd.stages.search as search

    monkeypatch.setattr(search, "check_writable", lambda path: None)  # so the study's SQLite meets the full disk
    out = workspace / "search"
    out.mkdir()
    before = snapshot(workspace)
    with _disk_full():
        result = run_cli_here("search", workspace / "tiny.yaml", "--device", "nrf52840", "--out", out,
                              PYTHONPATH=TESTS)
    one_line(result, 2, "study.db", "cannot write")
    assert snapshot(workspace) == before and not (out / "study.db").exists()


@pytest.mark.slow
def test_an_interrupt_landing_in_a_garbage_collection_callback_is_not_lost(workspace, monkeypatch):
    """JAX registers a gc callback; a signal handled while it runs raised its KeyboardInterrupt where Python ignores
    exceptions ("Exception ignored in: <function _xla_gc_callback>") and the export went on."""
    import gc

    import edgekd.formats.onnx.format as onnx_format

    def callback(phase, info):
        if phase == "start" and not raised:
            raised.append(True)
            signal.raise_signal(signal.SIGINT)  # handled right here, inside the callback

    def long_step(*args, **kwargs):
        gc.callbacks.append(callback)
        try:
            gc.collect()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the rest of a long step
                time.sleep(0.01)
        finally:
            gc.callbacks.remove(callback)
        raise AssertionError("the interrupt was lost")

    raised: list[bool] = []
    monkeypatch.setattr(onnx_format, "quantize_static", long_step)
    before = snapshot(workspace)
    started = time.monotonic()
    one_line(run_cli_here("export", workspace / "run", "--no-fp16"), 130, "interrupted:", "previous export")
    assert time.monotonic() - started < 10, "the interrupt waited for the step to end"
    assert raised and snapshot(workspace) == before
