"""cliplit's core path (import, the engine, the command on ordinary images) works where pi-heif, rawpy and
ExifRead cannot be imported (as on the GPU machine, docs/speed.md), nor PyAV and gradio; a HEIC, a RAW
or a video file read there fails on one line that names the missing package, and the batch goes on."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT
from PIL import Image

READERS = ("pi_heif", "pillow_heif", "rawpy", "exifread")  # imported only when a HEIC or RAW file is read
INTEGRATIONS = ("av", "gradio", "gradio_client")  # the video files and the app
ENGINE_SCRIPT = """
import numpy as np
import cliplit
from cliplit.engine.enhancer import Enhancer
model = cliplit.load_network({model!r})
pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
enhanced = Enhancer(model, device="cpu").enhance(pixels, output_type="np")
print("engine", enhanced.shape, enhanced.dtype, int(np.abs(enhanced.astype(int) - pixels).max()))
print("loaded", sorted(name for name in {hidden!r} if sys.modules.get(name) is not None))
"""


def run_hidden(code: str, hidden: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`code` in a Python process where the `hidden` modules cannot be imported (as if not installed)."""
    prelude = "import sys\n" + "".join(f"sys.modules[{name!r}] = None\n" for name in hidden)
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=600)


@pytest.mark.slow
def test_the_engine_and_the_command_run_without_the_optional_readers(tmp_path, model_dir):
    hidden = READERS + INTEGRATIONS
    result = run_hidden(ENGINE_SCRIPT.format(model=str(model_dir), hidden=hidden), hidden)
    assert result.returncode == 0, result.stderr
    # the random model's head starts from the identity: the engine gives the image back
    assert result.stdout.splitlines() == ["engine (24, 32, 3) uint8 0", "loaded []"]

    photo, heic, raw, clip = (tmp_path / name for name in ("photo.jpg", "shot.heic", "shot.dng", "clip.mp4"))
    Image.fromarray(np.random.default_rng(0).integers(0, 120, (30, 40, 3), dtype=np.uint8)).save(photo)
    for path in (heic, raw, clip):
        path.write_bytes(b"\x00" * 64)  # never opened: the missing package is named first
    out = tmp_path / "out"
    command = ["cliplit", "enhance", str(photo), str(heic), str(raw), str(clip), "--model", str(model_dir), "-o", str(out),
               "--device", "cpu", "--quiet"]
    result = run_hidden(f"import runpy\nsys.argv = {command!r}\nrunpy.run_module('cliplit', run_name='__main__')", hidden)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = sorted(line for line in result.stderr.splitlines() if line.startswith("error: "))
    assert len(errors) == len(result.stderr.strip().splitlines()) == 3, result.stderr
    assert errors[0] == f"error: {clip}: video files need PyAV: pip install 'cliplit[video]'"
    assert errors[1] == (f"error: {raw}: cannot read camera RAW files: rawpy and exifread are not installed "
                         "(cliplit's dependencies: pip install rawpy exifread)")
    assert errors[2].startswith(f"error: {heic}: cannot read HEIC/HEIF: ") and "pi_heif: not installed" in errors[2]
    with Image.open(out / "photo.png") as enhanced:
        assert enhanced.size == (40, 30)
