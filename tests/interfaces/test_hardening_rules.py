"""The shared rules of every command (issue 19), each checked as a user meets it, in a process:
the output-safety rule, the reading rule, the error boundary, validated numbers, offline pipelines."""

from __future__ import annotations

import os
import pickle
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliplit import CLIPLITConfig, CLIPLITModel

HANG_TIMEOUT_S = 120  # a process that has not answered by then hangs (these runs take seconds)


def cli(*args, cwd=None, env=None, timeout=HANG_TIMEOUT_S, **options) -> subprocess.CompletedProcess:
    options.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "cliplit", *map(str, args)], text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, **(env or {})}, **options)


def one_error(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode != 0 and len(lines) == 1, result.stderr
    return lines[0]


def photo(path: Path, size=(40, 30), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- output safety
def test_export_never_writes_over_or_into_the_model_it_reads_even_with_overwrite(tmp_path, model_dir):
    model = tmp_path / "model"
    model.mkdir()
    for name, data in snapshot(model_dir).items():
        (model / name).write_bytes(data)
    before = snapshot(model)
    line = one_error(cli("export", model, model / "model.safetensors", "--overwrite"))
    assert "never writes over what it reads" in line and "OUTPUT.onnx" in line
    line = one_error(cli("export", model / "model.safetensors", model / "model.safetensors", "--overwrite"))
    assert "never writes over what it reads" in line
    assert snapshot(model) == before
    (tmp_path / "file").write_text("mine")
    line = one_error(cli("export", model, tmp_path / "file" / "model.onnx"))
    assert "file is a file, not a folder" in line and (tmp_path / "file").read_text() == "mine"


def test_convert_push_to_hub_offline_is_refused_before_converting(tmp_path):
    line = one_error(cli("convert", tmp_path / "any.pth", tmp_path / "out", "--push-to-hub", "someone/model",
                         env={"HF_HUB_OFFLINE": "1"}))
    assert "--push-to-hub someone/model: HF_HUB_OFFLINE is set" in line and not (tmp_path / "out").exists()


def test_an_output_folder_inside_a_recursively_read_input_is_refused_before_any_work(tmp_path, model_dir):
    photo(tmp_path / "in" / "a.png")
    line = one_error(cli("enhance", tmp_path / "in", "-r", "-o", tmp_path / "in" / "out", "--model", model_dir))
    assert "--output" in line and "which is read" in line
    assert not (tmp_path / "in" / "out").exists()  # refused before anything was created or enhanced
    line = one_error(cli("enhance", tmp_path / "in", "-o", tmp_path / "in", "--model", model_dir))
    assert "is an input folder" in line


def test_a_failed_run_leaves_no_output_folder_and_an_image_name_is_not_taken_for_a_folder(tmp_path, model_dir):
    result = cli("enhance", "missing.jpg", "--model", model_dir, cwd=tmp_path)
    assert result.returncode == 1 and "missing.jpg: no such file" in result.stderr
    assert not (tmp_path / "enhanced").exists()
    image = photo(tmp_path / "a.png")
    line = one_error(cli("enhance", image, "--model", model_dir, "--output", "result.jpg", cwd=tmp_path))
    assert "result.jpg" in line and "ends like an image file" in line
    assert not (tmp_path / "result.jpg").exists()


def test_outputs_stay_atomic_when_signals_repeat(tmp_path, model_dir):
    inputs = [photo(tmp_path / f"p{i}.png", size=(1200, 900), seed=i) for i in range(5)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cliplit", "enhance", *map(str, inputs), "--model", str(model_dir), "-o", str(out), "-q"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + HANG_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None and not any(out.glob("*")):
        time.sleep(0.01)  # until the first write is in flight (its temporary file) or done
    if process.poll() is not None or not any(out.glob("*")):
        pytest.fail(f"the run ended or wrote nothing before it could be interrupted: {process.communicate()[1][-2000:]}")
    for _ in range(8):  # Ctrl-C again and again: each lands in a later phase of the shutdown (signals between
        process.send_signal(signal.SIGINT)  # two bytecodes coalesce, so they are spaced)
        time.sleep(0.25)
    _, stderr = process.communicate(timeout=HANG_TIMEOUT_S)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert not [p for p in out.rglob("*") if ".partial" in p.name]
    for path in (p for p in out.iterdir() if p.is_file()):  # the outputs (.cliplit/ holds their records)
        with Image.open(path) as image:
            image.load()  # complete files only


def test_convert_writes_files_readable_under_the_umask(tmp_path):
    from conftest import ENHANCEMENT_CHECKPOINT, require_reference

    require_reference()
    result = cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "converted", preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "converted").iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644, "preprocessor_config.json": 0o644}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


# ------------------------------------------------------------------------------------- reading rule
def test_named_pipes_are_refused_in_one_line_and_never_opened(tmp_path, model_dir):
    os.mkfifo(tmp_path / "pipe.png")
    good = photo(tmp_path / "good.png")
    result = cli("enhance", tmp_path / "pipe.png", good, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1 and "pipe.png: is a named pipe (FIFO)" in one_error(result)
    assert (tmp_path / "out" / "good.png").is_file()
    piped_model = tmp_path / "piped-model"
    piped_model.mkdir()
    (piped_model / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    os.mkfifo(piped_model / "model.safetensors")
    line = one_error(cli("enhance", good, "--model", piped_model, "-o", tmp_path / "out2"))
    assert "model.safetensors: is a named pipe (FIFO)" in line
    from cliplit.errors import ImageReadError
    from cliplit.imaging.files import read_image

    with pytest.raises(ImageReadError, match="named pipe"):
        read_image(tmp_path / "pipe.png")


def test_traversals_stop_at_symlink_loops_and_name_inputs_as_the_user_did(tmp_path, model_dir):
    tree = tmp_path / "tree"
    photo(tree / "a.png")
    photo(tree / "sub" / "b.png", seed=1)
    (tree / "sub" / "loop").symlink_to(tree)  # a folder link back up: a cycle
    (tree / "z-alias.png").symlink_to(tree / "a.png")  # a second name of a.png
    for inputs in ([f"{tree}/**/*.png"], [tree, "-r"]):
        out = tmp_path / f"out{len(inputs)}"
        result = cli("enhance", *inputs, "--model", model_dir, "-o", out, "-q")
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]  # each file once, by its own name
    from cliplit.safety.reading import glob_files

    assert glob_files(f"{tree}/**/*.png") == [tree / "a.png", tree / "sub" / "b.png", tree / "z-alias.png"]


# ------------------------------------------------------------------------------------- error boundary
def _with_closed_stdout(*args, cwd=None) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes anything (as `| head` after its lines)
    try:
        return cli(*args, cwd=cwd, stdout=write_end, stderr=subprocess.PIPE, capture_output=False)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("argv", [["models"], ["--help"], ["enhance", "--help"]])
def test_a_closed_stdout_ends_quietly(argv):
    result = _with_closed_stdout(*argv)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_full_disk_is_one_line_without_library_chatter(tmp_path, model_dir):
    sixteen_bit = tmp_path / "deep.png"
    rng = np.random.default_rng(0)
    cv2 = pytest.importorskip("cv2")
    cv2.imwrite(str(sixteen_bit), rng.integers(0, 65535, (64, 64, 3), dtype=np.uint16))
    limit = 4096  # bytes a file may grow to: the 16-bit output (~25 KB) cannot be written

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = cli("enhance", sixteen_bit, "--model", model_dir, "-o", tmp_path / "out", preexec_fn=small_files)
    line = one_error(result)
    assert line.startswith(f"error: {sixteen_bit}: could not write ") and "File too large" in line
    assert "libpng" not in result.stderr and not list((tmp_path / "out").glob(".*"))


def test_no_message_relays_advice_to_disable_weights_only(tmp_path):
    import datetime

    torch.save({"embedding_prompt": datetime.date(2024, 1, 1)}, tmp_path / "evil.pth")  # an object weights_only refuses
    from cliplit.errors import first_line

    torch_refusal = pickle.UnpicklingError("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` ...")
    assert "weights_only" not in first_line(torch_refusal) and "never loads" in first_line(torch_refusal)
    from cliplit.errors import CLIPLITError
    from cliplit.training.prompts import PromptPair

    with pytest.raises(CLIPLITError) as refused:
        PromptPair.load_authors_pth(tmp_path / "evil.pth", 4, 0, 1)
    assert "weights_only" not in str(refused.value) and "evil.pth" in str(refused.value)
    line = one_error(cli("enhance", tmp_path / "x.png", "--model", tmp_path / "evil.pth"))
    assert "weights_only" not in line


# ------------------------------------------------------------------------------------- numbers
def test_strengths_are_bounded_at_parse_time_and_the_engine_never_returns_nan(tmp_path, model_dir):
    from cliplit.model.architecture import MAX_STRENGTH
    from cliplit.model.network import apply_illumination

    line = [ln for ln in cli("enhance", photo(tmp_path / "a.png"), "--model", model_dir, "--strength", "50").stderr.splitlines()
            if "--strength" in ln]
    assert line and f"in [0, {MAX_STRENGTH:g}]" in line[-1]
    black = torch.zeros(1, 3, 4, 4, dtype=torch.float16)
    darkest = torch.full((1, 1, 4, 4), 1e-4, dtype=torch.float16)  # the network's illumination floor
    assert torch.isfinite(apply_illumination(black, darkest, MAX_STRENGTH)).all()
    assert torch.isfinite(apply_illumination(black.float(), darkest.float(), MAX_STRENGTH)).all()
    with pytest.raises(ValueError, match="strength"):
        import cliplit

        cliplit.enhance(CLIPLITModel(CLIPLITConfig()), np.zeros((8, 8, 3), np.uint8), strength=MAX_STRENGTH * 2)


def test_a_tensor_in_the_wrong_layout_is_reported_with_the_shape_given():
    import cliplit

    with pytest.raises(ValueError, match=r"\(8, 9, 3\)"):
        cliplit.enhance(CLIPLITModel(CLIPLITConfig()), torch.rand(8, 9, 3))


# ------------------------------------------------------------------------------------- offline pipeline
def test_the_pipeline_fetches_no_url_offline_and_reports_an_unreachable_one_in_one_line(model_dir, monkeypatch):
    from transformers import pipeline

    import cliplit  # noqa: F401 - registers the task
    from cliplit.errors import ImageReadError

    enhancer = pipeline("backlit-enhancement", model=str(model_dir))
    unreachable = "http://127.0.0.1:9/backlit.jpg"  # the discard port: nothing listens
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ImageReadError, match="not fetched: HF_HUB_OFFLINE is set"):
        enhancer(unreachable)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ImageReadError, match="cannot fetch the image") as error:
        enhancer(unreachable, timeout=5)
    assert "\n" not in str(error.value)
