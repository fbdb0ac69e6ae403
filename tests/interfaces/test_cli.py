"""`cliplit enhance` and `cliplit convert` (the command's `main`, in this process): outputs, safety, one-line errors."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, INIT_CHECKPOINT, RAVE_CHECKPOINT, golden_for, smallest_reference_image
from helpers import run_cli
from PIL import Image

pytestmark = pytest.mark.reference

RNG = np.random.default_rng(0)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line.strip() for line in result.stderr.replace("\r", "\n").splitlines() if "error:" in line]


def assert_no_traceback(result: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


def write_photo(path: Path, size=(40, 30)) -> Path:
    Image.fromarray((RNG.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def batch_result(tmp_path_factory):
    """One CLI run over a folder of good and bad files, plus a missing path and a glob."""
    folder = tmp_path_factory.mktemp("inputs")
    write_photo(folder / "first.jpg")
    write_photo(folder / "second.png")
    gray16 = (RNG.random((24, 32)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(folder / "gray16.png")
    cv2.imwrite(str(folder / "color16.tif"), (RNG.random((24, 32, 3)) * 65535).astype(np.uint16))
    (folder / "notes.jpg").write_text("this is not an image")
    buffer = io.BytesIO()
    Image.fromarray((RNG.random((300, 300, 3)) * 255).astype(np.uint8)).save(buffer, "JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    output = tmp_path_factory.mktemp("outputs")
    inputs_before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = run_cli("enhance", folder, folder / "does-not-exist.jpg", str(folder / "fir*.jpg"),
                     "--model", ENHANCEMENT_CHECKPOINT, "--output", output, "--device", "cpu")
    return folder, output, result, inputs_before


def test_batch_writes_every_good_file_and_reports_each_bad_one_in_one_line(batch_result):
    folder, output, result, _ = batch_result
    assert_no_traceback(result)
    assert result.returncode == 1
    written = sorted(p.name for p in output.glob("*.png"))
    assert written == ["color16.png", "first.png", "gray16.png", "second.png"]
    errors = error_lines(result)
    assert any("does-not-exist.jpg" in e and "no such file" in e for e in errors), errors
    assert any("notes.jpg" in e and "not an image" in e for e in errors), errors
    assert any("truncated.jpg" in e and "truncated" in e for e in errors), errors
    assert len(errors) == 3, errors


def test_batch_keeps_bit_depth_and_mode(batch_result):
    _, output, _, _ = batch_result
    assert cv2.imread(str(output / "gray16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    color16 = cv2.imread(str(output / "color16.png"), cv2.IMREAD_UNCHANGED)
    assert color16.dtype == np.uint16 and color16.shape == (24, 32, 3)
    with Image.open(output / "first.png") as first:
        assert first.mode == "RGB" and first.size == (40, 30)


def test_batch_leaves_inputs_untouched(batch_result):
    folder, _, _, inputs_before = batch_result
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == inputs_before


def test_never_overwrites_an_input_or_an_existing_output(tmp_path):
    photo = write_photo(tmp_path / "photo.png")
    original = photo.read_bytes()
    result = run_cli("enhance", photo, "--model", ENHANCEMENT_CHECKPOINT, "--output", tmp_path, "--device", "cpu")
    assert_no_traceback(result)
    assert result.returncode == 1 and photo.read_bytes() == original
    assert any("is an input (or a link to one)" in e for e in error_lines(result))

    out = tmp_path / "out"
    out.mkdir()
    (out / "photo.png").write_bytes(b"keep me")
    result = run_cli("enhance", photo, "--model", ENHANCEMENT_CHECKPOINT, "--output", out, "--device", "cpu")
    assert result.returncode == 1 and (out / "photo.png").read_bytes() == b"keep me"  # kept: nothing says how it was made
    assert "1 existing output(s) not made with this model and these settings" in error_lines(result)[0]
    result = run_cli("enhance", photo, "--model", ENHANCEMENT_CHECKPOINT, "--output", out, "--device", "cpu", "--overwrite")
    assert result.returncode == 0, result.stderr
    with Image.open(out / "photo.png") as replaced:
        assert replaced.size == (40, 30)


def test_same_stem_inputs_get_distinct_outputs(tmp_path):
    write_photo(tmp_path / "shot.jpg")
    write_photo(tmp_path / "shot.png")
    out = tmp_path / "out"
    result = run_cli("enhance", tmp_path / "shot.jpg", tmp_path / "shot.png", "--model", ENHANCEMENT_CHECKPOINT,
                     "--output", out, "--device", "cpu", "--quiet")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["shot.png", "shot.png.png"]


def test_strength_option_and_environment_model(tmp_path):
    photo = write_photo(tmp_path / "photo.jpg")
    result = run_cli("enhance", photo, "--strength", "0", "--output", tmp_path / "out", "--device", "cpu",
                     env={"CLIPLIT_MODEL": str(ENHANCEMENT_CHECKPOINT)})
    assert result.returncode == 0, result.stderr
    with Image.open(photo) as source, Image.open(tmp_path / "out" / "photo.png") as output:
        assert np.array_equal(np.asarray(source), np.asarray(output))


def test_convert_then_enhance_with_folder(tmp_path):
    result = run_cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "model")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    image = smallest_reference_image()
    result = run_cli("enhance", image, "--model", tmp_path / "model", "--output", tmp_path / "out", "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    produced = np.asarray(Image.open(tmp_path / "out" / f"{image.stem}.png")).astype(int)
    golden = np.asarray(Image.open(golden_for(image))).astype(int)
    assert np.abs(produced - golden).max() <= 1
    again = run_cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "model")
    assert again.returncode == 1 and "not empty" in again.stderr
    assert_no_traceback(again)


@pytest.mark.parametrize("checkpoint", [RAVE_CHECKPOINT, INIT_CHECKPOINT], ids=["rave", "init"])
def test_other_published_checkpoints_convert_and_enhance(checkpoint, tmp_path):
    import cliplit
    from cliplit.model.conversion import convert_checkpoint

    folder = convert_checkpoint(checkpoint, tmp_path / "model")
    model = cliplit.CLIPLITModel.from_pretrained(folder)
    photo = Image.open(smallest_reference_image()).reduce(4)
    enhanced = np.asarray(cliplit.enhance(model, photo)).astype(float)
    assert enhanced.shape == np.asarray(photo).shape
    assert np.isfinite(enhanced).all()
    if checkpoint == RAVE_CHECKPOINT:  # a trained enhancer brightens a backlit photo
        assert enhanced.mean() > np.asarray(photo).astype(float).mean()


def test_checkpoint_with_wrong_keys_lists_missing_and_unexpected(tmp_path):
    state = torch.load(ENHANCEMENT_CHECKPOINT, map_location="cpu", weights_only=True)
    state.pop("module.cond1.weight")
    state["module.extra_layer.weight"] = torch.zeros(3)
    torch.save(state, tmp_path / "wrong.pth")
    result = run_cli("convert", tmp_path / "wrong.pth", tmp_path / "out")
    assert_no_traceback(result)
    assert result.returncode == 1
    (line,) = error_lines(result)
    assert "wrong.pth" in line and "missing keys: stem.weight" in line and "unexpected keys: extra_layer.weight" in line


class Payload:
    """An object whose unpickling would run code: weights_only=True must refuse it."""

    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_checkpoint_unsafe_to_unpickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"weights": Payload()}, handle)
    for command in (["convert", tmp_path / "evil.pth", tmp_path / "out"],
                    ["enhance", write_photo(tmp_path / "p.jpg"), "--model", tmp_path / "evil.pth", "-o", tmp_path / "o"]):
        result = run_cli(*command)
        assert_no_traceback(result)
        assert result.returncode == 1
        assert "evil.pth: refused" in result.stderr and "never loads" in result.stderr
        assert "weights_only=False" not in result.stderr and "\x1b" not in result.stderr
        assert not (tmp_path / "pwned.txt").exists()


def test_bad_model_and_checkpoint_paths_give_one_line_errors(tmp_path):
    (tmp_path / "notes.pth").write_text("hello")
    photo = write_photo(tmp_path / "p.jpg")
    cases = [
        (["convert", tmp_path / "missing.pth", tmp_path / "o"], "missing.pth"),
        (["convert", tmp_path / "notes.pth", tmp_path / "o"], "notes.pth"),
        (["enhance", photo, "--model", tmp_path / "missing.pth", "-o", tmp_path / "o"], "missing.pth"),
        (["enhance", photo, "--model", tmp_path / "no-such-folder", "-o", tmp_path / "o"], "no-such-folder"),
    ]
    for command, name in cases:
        result = run_cli(*command)
        assert_no_traceback(result)
        assert result.returncode == 1
        lines = error_lines(result)
        assert len(lines) == 1 and name in lines[0], result.stderr


@pytest.mark.parametrize(("variant", "residual_padding", "outer_padding"),
                         [("reflect", "reflect", "reflect"), ("noreflect", "reflect", "zeros"), ("zeros", "zeros", "zeros")])
def test_convert_builds_each_padding_variant(tmp_path, variant, residual_padding, outer_padding):
    import json

    from cliplit.model.loading import load_network

    result = run_cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "model", "--padding-mode", variant)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["padding_mode"] == residual_padding
    network = load_network(tmp_path / "model")
    assert network.stem.padding_mode == network.illumination_head.padding_mode == outer_padding
    assert network.encoder_blocks[0].conv1.padding_mode == residual_padding
    assert network.pyramid_pooling.fuse_conv.padding_mode == "zeros"
