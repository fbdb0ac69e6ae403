"""Resuming a batch with other settings (issue 28): the model is checked before anything is skipped, an existing
output is skipped only when its record says it was made with the same model and settings, and one line says
when existing outputs were made otherwise (kept; `--overwrite` redoes them). In this process."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT
from helpers import run_cli
from PIL import Image

from cliplit import CLIPLITConfig, CLIPLITModel


def record_path(output):
    """Where docs/guarantees.md says an output's record is kept."""
    return output.parent / ".cliplit" / f"{output.name}.json"


def photo(path, size=(40, 30), seed=0):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def errors(result) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.fixture()
def enhanced(tmp_path, model_dir):
    """backlit.jpg enhanced into out/ with the random model: (input, output folder, output file, its bytes)."""
    source = photo(tmp_path / "backlit.jpg")
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    output = tmp_path / "out" / "backlit.png"
    return source, tmp_path / "out", output, output.read_bytes()


def test_a_model_that_does_not_exist_is_checked_before_anything_is_skipped(tmp_path, enhanced):
    source, out, output, before = enhanced
    result = run_cli("enhance", source, "-o", out, "--model", tmp_path / "foo.pth", "-q")
    (line,) = errors(result)
    assert result.returncode == 1 and "foo.pth: no such folder or file" in line and "skipped" not in result.stderr
    assert output.read_bytes() == before


def test_a_rerun_with_the_same_model_and_settings_skips_what_exists(enhanced, model_dir):
    source, out, output, before = enhanced
    result = run_cli("enhance", source, "-o", out, "--model", model_dir, "--tile-size", "16", "--device", "cpu", "-q")
    assert result.returncode == 0 and not errors(result)  # tiles and the device change how, not what
    assert "skipped 1 file(s) whose output exists, made with this model and these settings" in result.stderr
    assert output.read_bytes() == before


def test_outputs_made_with_another_model_or_settings_are_kept_and_said_in_one_line(tmp_path, enhanced):
    source, out, output, before = enhanced
    other_model = tmp_path / "other-model"
    torch.manual_seed(1)
    CLIPLITModel(CLIPLITConfig()).save_pretrained(other_model)
    result = run_cli("enhance", source, "-o", out, "--model", other_model, "--strength", "0.5", "-q")
    (line,) = errors(result)
    assert result.returncode == 1 and "skipped" not in result.stderr
    assert line == (f"error: {out}: 1 existing output(s) not made with this model and these settings (made with another "
                    "--model, --strength): kept, not redone; --overwrite redoes them, or choose another --output")
    assert output.read_bytes() == before
    result = run_cli("enhance", source, "-o", out, "--model", other_model, "--strength", "0.5", "--overwrite", "-q")
    assert result.returncode == 0 and not errors(result)
    assert output.read_bytes() != before
    assert json.loads(record_path(output).read_text())["settings"]["strength"] == 0.5
    result = run_cli("enhance", source, "-o", out, "--model", other_model, "--strength", "0.5", "-q")
    assert result.returncode == 0 and "skipped 1 file(s)" in result.stderr  # the redone output resumes as made


@pytest.mark.parametrize("options, named", [
    (["--denoise", "2"], "--denoise"), (["--mode", "fast"], "--mode"), (["--strip-metadata"], "--strip-metadata"),
    (["--precision", "bf16"], "--precision"), (["--color-space", "srgb"], "--color-space"),
    (["--quality", "80"], None),  # PNG is lossless: the quality does not change it
    (["--format", "auto"], None),  # a PNG input gives a PNG either way
])
def test_each_option_that_changes_the_result_is_compared(tmp_path, model_dir, options, named):
    source = photo(tmp_path / "backlit.png")
    assert run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "-q").returncode == 0
    before = (tmp_path / "out" / "backlit.png").read_bytes()
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, *options, "-q")
    assert (tmp_path / "out" / "backlit.png").read_bytes() == before
    if named is None:
        assert result.returncode == 0 and "skipped 1 file(s)" in result.stderr and not errors(result)
    else:
        (line,) = errors(result)
        assert result.returncode == 1 and "made with another --" in line and named in line


def test_the_quality_of_a_lossy_format_is_compared(tmp_path, model_dir):
    source = photo(tmp_path / "backlit.png")
    assert run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--format", "jpeg", "-q").returncode == 0
    same = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--format", "jpeg", "--quality", "95", "-q")
    assert same.returncode == 0 and "skipped 1 file(s)" in same.stderr  # 95: JPEG's default quality
    other = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "--format", "jpeg", "--quality", "80", "-q")
    assert other.returncode == 1 and "made with another --quality)" in errors(other)[0]


def test_an_output_without_a_record_is_kept_not_skipped(tmp_path, model_dir):
    source = photo(tmp_path / "backlit.jpg")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "backlit.png").write_bytes(b"mine")
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", model_dir, "-q")
    (line,) = errors(result)
    assert result.returncode == 1 and "with no record of their settings" in line and "--overwrite redoes them" in line
    assert (tmp_path / "out" / "backlit.png").read_bytes() == b"mine"


def test_an_output_about_to_be_redone_has_no_record_until_it_is_complete(tmp_path, enhanced, model_dir):
    """An --overwrite run that ends before the output is redone (here: the input became unreadable) leaves the old
    output without a record, so no later run takes it as made with the new settings."""
    source, out, output, before = enhanced
    source.write_bytes(b"not a photo any more")
    result = run_cli("enhance", source, "-o", out, "--model", model_dir, "--overwrite", "--strength", "0.5", "-q")
    assert result.returncode == 1 and output.read_bytes() == before and not record_path(output).exists()
    photo(source)
    result = run_cli("enhance", source, "-o", out, "--model", model_dir, "-q")
    assert result.returncode == 1 and "with no record of their settings" in errors(result)[0]


@pytest.mark.reference
def test_a_published_checkpoint_and_its_converted_folder_are_the_same_model(tmp_path):
    source = photo(tmp_path / "backlit.jpg", size=(24, 20))
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", ENHANCEMENT_CHECKPOINT, "-q")
    assert result.returncode == 0, result.stderr
    assert run_cli("convert", ENHANCEMENT_CHECKPOINT, tmp_path / "converted").returncode == 0
    result = run_cli("enhance", source, "-o", tmp_path / "out", "--model", tmp_path / "converted", "-q")
    assert result.returncode == 0 and "skipped 1 file(s)" in result.stderr, result.stderr


def test_an_output_made_from_another_input_is_kept_when_the_names_shift(tmp_path, model_dir):
    """Adding a.bmp beside a.jpg names the two apart: a.png is now the BMP's name. The JPEG's a.png is not
    taken for the BMP's output: kept, and said."""
    jpeg = photo(tmp_path / "in" / "a.jpg")
    first = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert first.returncode == 0, first.stderr
    made_from_the_jpeg = (tmp_path / "out" / "a.png").read_bytes()
    assert json.loads(record_path(tmp_path / "out" / "a.png").read_text())["source"] == str(jpeg.resolve())
    photo(tmp_path / "in" / "a.bmp", seed=1)
    second = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert second.returncode == 1
    (line,) = errors(second)
    assert "1 existing output(s) not made with this model and these settings (made from another input" in line
    assert "skipped" not in second.stderr
    assert (tmp_path / "out" / "a.png").read_bytes() == made_from_the_jpeg  # kept, never overwritten


def test_a_record_that_cannot_be_replaced_fails_that_file_only(tmp_path, model_dir):
    for name in ("a", "b"):
        photo(tmp_path / "in" / f"{name}.jpg")
    first = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert first.returncode == 0, first.stderr
    blocked = record_path(tmp_path / "out" / "b.png")
    blocked.unlink()
    blocked.mkdir()  # a folder where the record goes
    result = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q", "--overwrite")
    assert result.returncode == 1
    (line,) = errors(result)
    assert line.startswith(f"error: {tmp_path / 'in' / 'b.jpg'}: the record of its output cannot be replaced (")
    assert json.loads(record_path(tmp_path / "out" / "a.png").read_text())["source"].endswith("a.jpg")  # a.jpg redone


def test_the_same_input_by_another_spelling_is_skipped(tmp_path, model_dir):
    """The record names the input by its real path: a folder reached through a link is the same input."""
    photo(tmp_path / "in" / "a.jpg")
    (tmp_path / "link").symlink_to(tmp_path / "in", target_is_directory=True)
    first = run_cli("enhance", tmp_path / "in", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert first.returncode == 0, first.stderr
    again = run_cli("enhance", tmp_path / "link", "-o", tmp_path / "out", "--model", model_dir, "-q")
    assert again.returncode == 0 and not errors(again)
    assert "skipped 1 file(s) whose output exists" in again.stderr
