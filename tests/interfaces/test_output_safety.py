"""Nothing a user gave to the `cliplit` command is overwritten or lost, and an interrupted run leaves no
partial file: output places checked before any work, same-stem inputs named apart, links to inputs and the
model being read never written over, files readable under the umask, a full disk reported in one line, and
SIGTERM or repeated Ctrl-C (the command as a process) leaving complete files only, which a rerun completes.
(Bad input and its one-line errors are in test_bad_input.py.)"""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, require_reference
from helpers import PROCESS_TIMEOUT_S, error_lines, one_error, python_env, random_photo, run_cli, run_cli_process
from PIL import Image

SIGNAL_WAIT_S = 240  # how long a run may take to write its first file on a busy machine


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- output places
def test_output_folder_problems_are_one_line(tmp_path, model_dir):
    image = random_photo(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    for output, reason in ((tmp_path / "file", "exists and is not a folder"), (tmp_path / "file" / "sub", "cannot create")):
        result = run_cli("enhance", image, "--model", model_dir, "-o", output)
        assert result.returncode == 1 and len(error_lines(result)) == 1 and reason in error_lines(result)[0]
    result = run_cli("convert", tmp_path / "nothing.pth", tmp_path / "file")
    assert result.returncode == 1 and len(error_lines(result)) == 1
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)
    result = run_cli("enhance", image, "--model", model_dir, "-o", out, "--overwrite")
    assert result.returncode == 1 and error_lines(result) == [f"error: {image}: output {out / 'a.png'} is a folder"]


def test_an_output_folder_inside_a_recursively_read_input_is_refused_before_any_work(tmp_path, model_dir):
    random_photo(tmp_path / "in" / "a.png")
    line = one_error(run_cli("enhance", tmp_path / "in", "-r", "-o", tmp_path / "in" / "out", "--model", model_dir))
    assert "--output" in line and "which is read" in line
    assert not (tmp_path / "in" / "out").exists()  # refused before anything was created or enhanced
    line = one_error(run_cli("enhance", tmp_path / "in", "-o", tmp_path / "in", "--model", model_dir))
    assert "is an input folder" in line


def test_a_failed_run_leaves_no_output_folder_and_an_image_name_is_not_taken_for_a_folder(tmp_path, model_dir):
    result = run_cli("enhance", "missing.jpg", "--model", model_dir, cwd=tmp_path)
    assert result.returncode == 1 and "missing.jpg: no such file" in result.stderr
    assert not (tmp_path / "enhanced").exists()
    image = random_photo(tmp_path / "a.png")
    line = one_error(run_cli("enhance", image, "--model", model_dir, "--output", "result.jpg", cwd=tmp_path))
    assert "result.jpg" in line and "ends like an image file" in line
    assert not (tmp_path / "result.jpg").exists()


# ------------------------------------------------------------------------------------- what is never written over
def test_same_stem_inputs_are_named_apart_and_links_to_inputs_are_refused(tmp_path, model_dir):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub2").mkdir()
    inputs = [random_photo(tmp_path / "a.jpg"), random_photo(tmp_path / "sub" / "a.jpg", seed=1), random_photo(tmp_path / "sub2" / "a.jpg", seed=2)]
    out = tmp_path / "out"
    result = run_cli("enhance", *inputs, "--model", model_dir, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["a.jpg-2.png", "a.jpg.png", "a.png"]
    linked = tmp_path / "linked"
    linked.mkdir()
    original = inputs[0].read_bytes()
    os.link(inputs[0], linked / "a.png")  # the output name is a hard link to an input
    result = run_cli("enhance", inputs[0], "--model", model_dir, "-o", linked, "--overwrite")
    assert result.returncode == 1 and "is an input (or a link to one)" in error_lines(result)[0]
    assert inputs[0].read_bytes() == original


def test_export_never_writes_over_or_into_the_model_it_reads_even_with_overwrite(tmp_path, model_dir):
    model = tmp_path / "model"
    model.mkdir()
    for name, data in snapshot(model_dir).items():
        (model / name).write_bytes(data)
    before = snapshot(model)
    line = one_error(run_cli("export", model, model / "model.safetensors", "--overwrite"))
    assert "never writes over what it reads" in line and "OUTPUT.onnx" in line
    line = one_error(run_cli("export", model / "model.safetensors", model / "model.safetensors", "--overwrite"))
    assert "never writes over what it reads" in line
    assert snapshot(model) == before
    (tmp_path / "file").write_text("mine")
    line = one_error(run_cli("export", model, tmp_path / "file" / "model.onnx"))
    assert "file is a file, not a folder" in line and (tmp_path / "file").read_text() == "mine"


def test_convert_writes_files_readable_under_the_umask(tmp_path):
    require_reference()
    previous = os.umask(0o022)
    try:
        result = run_cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "converted")
    finally:
        os.umask(previous)
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "converted").iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644, "preprocessor_config.json": 0o644}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


# ------------------------------------------------------------------------------------- the process: disk and signals
@pytest.mark.slow
def test_a_full_disk_is_one_line_without_library_chatter(tmp_path, model_dir):
    sixteen_bit = tmp_path / "deep.png"
    rng = np.random.default_rng(0)
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(sixteen_bit), rng.integers(0, 65535, (64, 64, 3), dtype=np.uint16))
    limit = 4096  # bytes a file may grow to: the 16-bit output (~25 KB) cannot be written

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_cli_process("enhance", sixteen_bit, "--model", model_dir, "-o", tmp_path / "out", preexec_fn=small_files)
    line = one_error(result)
    assert line.startswith(f"error: {sixteen_bit}: could not write ") and "File too large" in line
    assert "libpng" not in result.stderr and not list((tmp_path / "out").glob(".*"))


def start_and_wait_for_a_write(command: list[str], out: Path, written) -> subprocess.Popen:
    """Start `command` (stderr piped) and return once `written(out)` holds; fails if the run ends first."""
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=python_env())
    deadline = time.monotonic() + SIGNAL_WAIT_S
    while time.monotonic() < deadline and process.poll() is None and not written(out):
        time.sleep(0.01)
    if process.poll() is not None or not written(out):
        ended = process.poll() is not None
        process.kill()
        pytest.fail(f"the run {'ended' if ended else f'wrote nothing in {SIGNAL_WAIT_S} s'} before it could be interrupted: "
                    f"{process.communicate()[1][-2000:]}")
    return process


@pytest.mark.slow
def test_an_interrupted_batch_leaves_no_partial_file_and_a_rerun_completes_it(tmp_path, model_dir):
    inputs = [random_photo(tmp_path / f"p{i}.png", size=(1200, 900), seed=i) for i in range(6)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cliplit", "enhance", *map(str, inputs), "--model", str(model_dir), "-o", str(out), "-q"]
    process = start_and_wait_for_a_write(
        command, out, lambda folder: any(p.suffix == ".png" and not p.name.startswith(".") for p in folder.glob("*")))
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=SIGNAL_WAIT_S)
    assert process.returncode == 130 and "Traceback" not in stderr and "interrupted" in stderr
    written = sorted(p for p in out.iterdir() if p.is_file())  # the outputs (.cliplit/ holds their records)
    assert written and all(not p.name.startswith(".") for p in written)  # no temporary file left
    for path in written:
        with Image.open(path) as image:
            image.load()  # complete, readable PNGs only
            assert image.size == (1200, 900)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, env=python_env())
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(written)} file(s) whose output exists" in rerun.stderr
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{p.stem}.png" for p in inputs)


@pytest.mark.slow
def test_outputs_stay_atomic_when_signals_repeat(tmp_path, model_dir):
    inputs = [random_photo(tmp_path / f"p{i}.png", size=(1200, 900), seed=i) for i in range(5)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cliplit", "enhance", *map(str, inputs), "--model", str(model_dir), "-o", str(out), "-q"]
    # until the first write is in flight (its temporary file) or done
    process = start_and_wait_for_a_write(command, out, lambda folder: any(folder.glob("*")))
    for _ in range(8):  # Ctrl-C again and again: each lands in a later phase of the shutdown (signals between
        process.send_signal(signal.SIGINT)  # two bytecodes coalesce, so they are spaced)
        time.sleep(0.25)
    _, stderr = process.communicate(timeout=SIGNAL_WAIT_S)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    for path in (p for p in out.iterdir() if p.is_file()):  # the outputs (.cliplit/ holds their records)
        with Image.open(path) as image:
            image.load()  # complete files only
