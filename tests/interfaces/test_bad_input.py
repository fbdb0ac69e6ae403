"""Bad, careless and hostile input to the `cliplit` command: each problem is one line naming the file (or
the option) and the reason, never a traceback, and the other files of a batch go on. Options and numbers
checked before any work, damaged model files, unreadable or hostile images (NaN pixels, control characters
in names, named pipes, decompression bombs, symlink loops), the error boundary (a closed stdout, torch's
advice never relayed) and offline pipelines. (What happens to outputs is in test_output_safety.py.)"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import tracemalloc

import numpy as np
import pytest
import torch
from helpers import error_lines, one_error, random_photo, run_cli, run_cli_process, run_main
from PIL import Image

from cliplit import CLIPLITConfig, CLIPLITModel
from cliplit.errors import ImageReadError
from cliplit.model.architecture import MAX_STRENGTH

ONE_MEGAPIXEL_SIDE = 1000


# ------------------------------------------------------------------------------------- options and numbers
BAD_OPTIONS = [  # (the option, what its one error line says)
    (["--strength", "-1"], ("--strength",)), (["--strength", "nan"], ("--strength",)),
    (["--strength", "50"], ("--strength", f"in [0, {MAX_STRENGTH:g}]")),
    (["--tile-size", "1"], ("--tile-size",)), (["--tile-size", "-3"], ("--tile-size",)),
    (["--fast-downscale", "0"], ("--fast-downscale",)), (["--fast-downscale", "0.5"], ("--fast-downscale",)),
    (["--device", "foo"], ("not a device",)), (["--max-megapixels", "0"], ("--max-megapixels",)),
]


@pytest.mark.parametrize(("option", "expected"), BAD_OPTIONS, ids=[" ".join(option) for option, _ in BAD_OPTIONS])
def test_bad_options_fail_in_one_line_before_any_model_is_loaded(tmp_path, option, expected):
    image = random_photo(tmp_path / "a.png")
    result = run_cli("enhance", image, "--model", tmp_path / "no-such-model", "-o", tmp_path / "out", *option)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and all(fragment in lines[0] for fragment in expected), result.stderr
    assert "no-such-model" not in result.stderr  # the option, not the model
    assert not (tmp_path / "out").exists()


def test_the_engine_never_returns_nan_at_the_largest_strength_and_refuses_beyond_it():
    from cliplit.model.network import apply_illumination

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


def test_convert_push_to_hub_offline_is_refused_before_converting(tmp_path):
    line = one_error(run_cli("convert", tmp_path / "any.pth", tmp_path / "out", "--push-to-hub", "someone/model",
                             env={"HF_HUB_OFFLINE": "1"}))
    assert "--push-to-hub someone/model: HF_HUB_OFFLINE is set" in line and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------- model files
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


def test_checkpoints_are_validated_at_load(tmp_path, model_dir):
    from safetensors.torch import load_file, save_file

    image = random_photo(tmp_path / "a.png")
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
        result = run_cli("enhance", image, "--model", folder, "-o", tmp_path / "out")
        assert result.returncode == 1 and len(error_lines(result)) == 1 and reason in error_lines(result)[0], (folder, result.stderr)
    authors = {authors_key(key): value for key, value in load_file(model_dir / "model.safetensors").items()}
    authors["module.cond1.weight"] = torch.full_like(authors["module.cond1.weight"], float("inf"))
    torch.save(authors, tmp_path / "inf.pth")  # an authors' .pth whose stem weights are infinite
    result = run_cli("convert", tmp_path / "inf.pth", tmp_path / "converted")
    assert result.returncode == 1 and "NaN or infinite values: stem.weight" in error_lines(result)[0]
    assert not (tmp_path / "converted").exists()


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
    line = one_error(run_cli("enhance", tmp_path / "x.png", "--model", tmp_path / "evil.pth"))
    assert "weights_only" not in line


# ------------------------------------------------------------------------------------- images and file trees
def test_nan_pixels_are_refused_per_file_and_never_reach_an_output(tmp_path, model_dir):
    values = np.random.default_rng(0).random((20, 24), dtype=np.float32)
    values[3, 4] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tif")
    good = random_photo(tmp_path / "good.png")
    result = run_cli("enhance", tmp_path / "nan.tif", good, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1
    assert error_lines(result) == [f"error: {tmp_path / 'nan.tif'}: cannot read image: the image holds NaN or infinite values"]
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
    result = run_cli("enhance", tmp_path / "anim.gif", "--model", model_dir, "-o", tmp_path / "out", "-q")
    assert result.returncode == 0 and "note: " in result.stderr and "3 frames" in result.stderr
    assert (tmp_path / "out" / "anim.png").is_file()


def test_file_names_with_control_characters_cannot_forge_error_lines(tmp_path, model_dir):
    evil = tmp_path / "x\nerror: forged\x1b[2J.png"
    evil.write_bytes(b"not an image")
    result = run_cli("enhance", evil, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert not any(line.startswith("error: forged") for line in lines) and "\x1b" not in result.stderr
    assert any("\\nerror: forged\\x1b[2J.png: not an image" in line for line in error_lines(result))


def test_the_pixel_cap_refuses_from_the_header_and_decoding_memory_follows_the_image(tmp_path, model_dir):
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(huge, optimize=True)  # a few hundred KB that decode to 144 MP
    assert huge.stat().st_size < 1_000_000
    result = run_cli("enhance", huge, random_photo(tmp_path / "ok.png"), "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1 and "over the 50 MP limit" in error_lines(result)[0]
    assert (tmp_path / "out" / "ok.png").is_file()
    from cliplit.imaging.files import read_image

    side = ONE_MEGAPIXEL_SIDE
    big = random_photo(tmp_path / "big.png", size=(side, side))
    tracemalloc.start()
    decoded = read_image(big)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert decoded.pixels.shape == (side, side, 3)
    assert peak / (side * side) < 16  # float32 RGB (12 bytes per pixel) and the 8-bit decode (3), no more


def test_named_pipes_are_refused_in_one_line_and_never_opened(tmp_path, model_dir):
    os.mkfifo(tmp_path / "pipe.png")
    good = random_photo(tmp_path / "good.png")
    result = run_cli("enhance", tmp_path / "pipe.png", good, "--model", model_dir, "-o", tmp_path / "out")
    assert result.returncode == 1 and "pipe.png: is a named pipe (FIFO)" in one_error(result)
    assert (tmp_path / "out" / "good.png").is_file()
    piped_model = tmp_path / "piped-model"
    piped_model.mkdir()
    (piped_model / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    os.mkfifo(piped_model / "model.safetensors")
    line = one_error(run_cli("enhance", good, "--model", piped_model, "-o", tmp_path / "out2"))
    assert "model.safetensors: is a named pipe (FIFO)" in line
    from cliplit.imaging.files import read_image

    with pytest.raises(ImageReadError, match="named pipe"):
        read_image(tmp_path / "pipe.png")


def test_traversals_stop_at_symlink_loops_and_name_inputs_as_the_user_did(tmp_path, model_dir):
    tree = tmp_path / "tree"
    random_photo(tree / "a.png")
    random_photo(tree / "sub" / "b.png", seed=1)
    (tree / "sub" / "loop").symlink_to(tree)  # a folder link back up: a cycle
    (tree / "z-alias.png").symlink_to(tree / "a.png")  # a second name of a.png
    for inputs in ([f"{tree}/**/*.png"], [tree, "-r"]):
        out = tmp_path / f"out{len(inputs)}"
        result = run_cli("enhance", *inputs, "--model", model_dir, "-o", out, "-q")
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]  # each file once, by its own name
    from cliplit.safety.reading import glob_files

    assert glob_files(f"{tree}/**/*.png") == [tree / "a.png", tree / "sub" / "b.png", tree / "z-alias.png"]


# ------------------------------------------------------------------------------------- error boundary
def raising(error: BaseException):
    def command():
        raise error
    return command


@pytest.mark.parametrize(("error", "status", "line"), [
    (ImageReadError("a.png: not an image"), 1, "error: a.png: not an image"),
    (OSError(28, "No space left on device", "out/a.png"), 1, "error: out/a.png: No space left on device"),
    (OSError(18, "Invalid cross-device link", "a.png", None, "b\nc.png"), 1, "error: a.png -> b\\nc.png: Invalid cross-device link"),
    (MemoryError(), 1, "error: out of memory (try a smaller --tile-size, or fewer or smaller images)"),
    (KeyboardInterrupt(), 130, "error: interrupted (outputs written so far are complete; rerun the command to finish)"),
    (RuntimeError("first line\nsecond line"), 1, "error: RuntimeError: first line (set CLIPLIT_DEBUG=1 for the traceback)"),
], ids=["cliplit-error", "os-error", "os-error-two-files", "memory", "interrupt", "unexpected"])
def test_the_boundary_turns_each_failure_into_one_line_and_its_exit_status(error, status, line, monkeypatch):
    from cliplit.safety.boundary import run_entry_point

    monkeypatch.delenv("CLIPLIT_DEBUG", raising=False)
    result = run_main(lambda argv: run_entry_point(raising(error)))
    assert (result.returncode, result.stderr, result.stdout) == (status, line + "\n", "")


def test_the_boundary_drops_what_a_gone_reader_would_have_read_and_writes_lines_whole():
    from cliplit.safety.boundary import WholeLinesQuietWhenClosed

    class ReaderGone(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

    quiet = WholeLinesQuietWhenClosed(ReaderGone())
    assert quiet.write("a line\n") == len("a line\n") and quiet.closed_by_reader
    quiet.write("more\n")
    quiet.flush()  # nothing raised: the work goes on
    writes = []

    class Recording(io.StringIO):
        def write(self, text):
            writes.append(text)
            return len(text)

    whole = WholeLinesQuietWhenClosed(Recording())
    for piece in ("error: ", "one line", "\n", "a second", "\nand a third\n"):
        whole.write(piece)
    assert writes == ["error: one line\n", "a second\nand a third\n"]  # each line in one write, never cut


def _with_closed_stdout(*args) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the command writes anything (as `| head` after its lines)
    try:
        return run_cli_process(*args, stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["models"], ["--help"], ["enhance", "--help"]])
def test_a_closed_stdout_ends_quietly(argv):
    result = _with_closed_stdout(*argv)
    assert result.returncode == 0 and result.stderr == "", result.stderr


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
