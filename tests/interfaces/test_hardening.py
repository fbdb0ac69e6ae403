"""Hostile and careless input: every failure is one line naming the file, the other files go on,
nothing given is overwritten or lost, and an interrupted run leaves no partial file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ONE_MEGAPIXEL_SIDE = 1000


def cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cliplit", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def errors(result) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def photo(path: Path, size=(40, 30), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize(("option", "expected"), [
    (["--strength", "-1"], "--strength"), (["--strength", "nan"], "--strength"), (["--tile-size", "1"], "--tile-size"),
    (["--fast-downscale", "0"], "--fast-downscale"), (["--device", "foo"], "not a device"),
    (["--max-megapixels", "0"], "--max-megapixels"),
])
def test_bad_options_fail_before_any_model_is_loaded(tmp_path, option, expected):
    image = photo(tmp_path / "a.png")
    result = cli("enhance", image, "--model", tmp_path / "no-such-model", "-o", tmp_path / "out", *option)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert expected in result.stderr and "no-such-model" not in result.stderr  # the option, not the model


def test_output_folder_problems_are_one_line(tmp_path, model_dir):
    image = photo(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    for output, reason in ((tmp_path / "file", "exists and is not a folder"), (tmp_path / "file" / "sub", "cannot create")):
        result = cli("enhance", image, "--model", model_dir, "-o", output)
        assert result.returncode == 1 and len(errors(result)) == 1 and reason in errors(result)[0]
    result = cli("convert", tmp_path / "nothing.pth", tmp_path / "file")
    assert result.returncode == 1 and len(errors(result)) == 1
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)
    result = cli("enhance", image, "--model", model_dir, "-o", out, "--overwrite")
    assert result.returncode == 1 and errors(result) == [f"error: {image}: output {out / 'a.png'} is a folder"]


def test_checkpoints_are_validated_at_load(tmp_path, model_dir):
    from safetensors.torch import load_file, save_file

    image = photo(tmp_path / "a.png")
    cases = {}
    nan_folder = tmp_path / "nan"
    nan_folder.mkdir()
    (nan_folder / "config.json").write_text((model_dir / "config.json").read_text())
    weights = load_file(model_dir / "model.safetensors")
    weights["stem.weight"][0, 0, 0, 0] = float("nan")
    save_file(weights, nan_folder / "model.safetensors")
    cases[nan_folder] = "NaN or infinite"
    for name, edit, reason in (("bert", {"model_type": "bert"}, "model_type is 'bert'"),
                               ("negative", {"hidden_size": -1}, "hidden_size")):
        folder = tmp_path / name
        folder.mkdir()
        config = json.loads((model_dir / "config.json").read_text())
        config.update(edit)
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
        cases[folder] = reason
    for name, data, reason in (("truncated", (model_dir / "model.safetensors").read_bytes()[:500], "not a readable safetensors"),
                               ("header", b"\xff" * 64, "not a readable safetensors")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text((model_dir / "config.json").read_text())
        (folder / "model.safetensors").write_bytes(data)
        cases[folder] = reason
    for folder, reason in cases.items():
        result = cli("enhance", image, "--model", folder, "-o", tmp_path / "out")
        assert result.returncode == 1 and len(errors(result)) == 1 and reason in errors(result)[0], (folder, result.stderr)
    authors = {authors_key(key): value for key, value in load_file(model_dir / "model.safetensors").items()}
    authors["module.cond1.weight"] = torch.full_like(authors["module.cond1.weight"], float("inf"))
    torch.save(authors, tmp_path / "inf.pth")  # an authors' .pth whose stem weights are infinite
    result = cli("convert", tmp_path / "inf.pth", tmp_path / "converted")
    assert result.returncode == 1 and "NaN or infinite values: stem.weight" in errors(result)[0]
    assert not (tmp_path / "converted").exists()


def authors_key(key: str) -> str:
    """Our parameter name -> the authors' (`model_small.py`, wrapped in DataParallel)."""
    import re

    for pattern, replacement in ((r"^stem\.", "cond1."), (r"^expand\.", "condx."), (r"^reduce\.", "condy."),
                                 (r"^illumination_head\.", "cond_add1."),
                                 (r"^pyramid_pooling\.stages\.(\d)\.conv\.", r"PPM1.features.\1.1."),
                                 (r"^pyramid_pooling\.stages\.(\d)\.activation\.", r"PPM1.features.\1.2."),
                                 (r"^pyramid_pooling\.fuse_conv\.", "PPM1.fuse.0."), (r"^pyramid_pooling\.fuse_activation\.", "PPM1.fuse.1.")):
        key = re.sub(pattern, replacement, key)
    for stage, first in (("encoder_blocks", 1), ("middle_blocks", 3), ("decoder_blocks", 5)):
        key = re.sub(rf"^{stage}\.(\d)\.", lambda m: f"ResidualBlock{int(m[1]) + first}.", key)
    return "module." + key


def test_nan_pixels_are_refused_per_file_and_never_reach_an_output(tmp_path, model_dir):
    values = np.random.default_rng(0).random((20, 24), dtype=np.float32)
    values[3, 4] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    good = photo(tmp_path / "good.png")
    result = cli("enhance", tmp_path / "nan.tif", good, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert errors(result) == [f"error: {tmp_path / 'nan.tif'}: cannot read image: the image holds NaN or infinite values"]
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "nan.png").exists()
    import cliplit

    model = cliplit.load_model(model_dir)
    pixels = torch.rand(1, 3, 16, 16)
    pixels[0, 0, 2, 2], pixels[0, 1, 3, 3], pixels[0, 2, 4, 4] = float("nan"), float("inf"), -float("inf")
    with torch.no_grad():
        output = model(pixels)
        clean = pixels.nan_to_num(nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)
        assert torch.equal(output.illumination, model(clean).illumination)  # NaN reads as 0, inf as 1
    assert torch.isfinite(output.reconstruction).all() and torch.isfinite(output.illumination).all()
    with pytest.raises(ValueError, match="NaN"):
        cliplit.enhance(model, np.full((8, 8, 3), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="uint32"):
        cliplit.enhance(model, np.zeros((8, 8, 3), dtype=np.uint32))


def test_multi_frame_files_get_a_note(tmp_path, model_dir):
    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    result = cli("enhance", tmp_path / "anim.gif", "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 0 and "note: " in result.stderr and "3 frames" in result.stderr
    assert (tmp_path / "out" / "anim.png").is_file()


def test_same_stem_inputs_are_named_apart_and_links_to_inputs_are_refused(tmp_path, model_dir):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub2").mkdir()
    inputs = [photo(tmp_path / "a.jpg"), photo(tmp_path / "sub" / "a.jpg", seed=1), photo(tmp_path / "sub2" / "a.jpg", seed=2)]
    out = tmp_path / "out"
    result = cli("enhance", *inputs, "--model", model_dir, "-o", out, "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.glob("*.png")) == ["a.jpg-2.png", "a.jpg.png", "a.png"]
    linked = tmp_path / "linked"
    linked.mkdir()
    original = inputs[0].read_bytes()
    os.link(inputs[0], linked / "a.png")  # the output name is a hard link to an input
    result = cli("enhance", inputs[0], "--model", model_dir, "-o", linked, "--overwrite")
    assert result.returncode == 1 and "is an input (or a link to one)" in errors(result)[0]
    assert inputs[0].read_bytes() == original


def test_file_names_with_control_characters_cannot_forge_error_lines(tmp_path, model_dir):
    evil = tmp_path / "x\nerror: forged\x1b[2J.png"
    evil.write_bytes(b"not an image")
    result = cli("enhance", evil, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert not any(line.startswith("error: forged") for line in lines) and "\x1b" not in result.stderr
    assert any("\\nerror: forged\\x1b[2J.png: not an image" in line for line in errors(result))


def test_the_pixel_cap_refuses_from_the_header_and_decoding_memory_follows_the_image(tmp_path, model_dir):
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(huge, optimize=True)  # a few hundred KB that decode to 144 MP
    assert huge.stat().st_size < 1_000_000
    result = cli("enhance", huge, photo(tmp_path / "ok.png"), "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1 and "over the 50 MP limit" in errors(result)[0]
    assert (tmp_path / "out" / "ok.png").is_file()
    from cliplit.imaging.files import read_image

    side = ONE_MEGAPIXEL_SIDE
    big = photo(tmp_path / "big.png", size=(side, side))
    tracemalloc.start()
    decoded = read_image(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert decoded.pixels.shape == (side, side, 3)
    assert peak / (side * side) < 16  # float32 RGB (12 bytes per pixel) and the 8-bit decode (3), no more


def test_an_interrupted_batch_leaves_no_partial_file_and_a_rerun_completes_it(tmp_path, model_dir):
    inputs = [photo(tmp_path / f"p{i}.png", size=(1200, 900), seed=i) for i in range(6)]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "cliplit", "enhance", *map(str, inputs), "--model", str(model_dir), "-o", str(out), "-q"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not any(
            p.suffix == ".png" and not p.name.startswith(".") for p in out.glob("*")):
        time.sleep(0.05)
    if process.poll() is not None:
        pytest.fail(f"the run ended before it could be interrupted: {process.communicate()[1][-2000:]}")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 130 and "Traceback" not in stderr and "interrupted" in stderr
    written = sorted(p for p in out.iterdir() if p.is_file())  # the outputs (.cliplit/ holds their records)
    assert written and all(not p.name.startswith(".") for p in written)  # no temporary file left
    assert not [p for p in out.rglob("*") if ".partial" in p.name]  # nor a temporary record
    for path in written:
        with Image.open(path) as image:
            image.load()  # complete, readable PNGs only
            assert image.size == (1200, 900)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(written)} file(s) whose output exists" in rerun.stderr
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{p.stem}.png" for p in inputs)
