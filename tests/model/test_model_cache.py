"""The published models' cache: put in place offline with `cliplit models add`, verified by `cliplit models`,
healed from the checked download when damaged, readable by the other users of a shared cache, and every
message naming only what the command takes."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ENHANCEMENT_CHECKPOINT, INIT_CHECKPOINT
from helpers import run_cli
from PIL import Image

pytestmark = pytest.mark.reference


def cli(*args, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`cliplit ARGS` in this process with `cache` as the cliplit cache, on a machine that never reaches GitHub
    (HF_HUB_OFFLINE), no CLIPLIT_MODEL, and the usual umask (022)."""
    previous = os.umask(0o022)
    try:
        return run_cli(*args, env={"CLIPLIT_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "CLIPLIT_MODEL": None}, cwd=cwd)
    finally:
        os.umask(previous)


def cached_state(result: subprocess.CompletedProcess, name: str) -> str:
    row = next(line for line in result.stdout.splitlines() if line.split() and line.split()[0] == name)
    return row.split()[2] if "(default)" in row else row.split()[1]


def test_models_add_puts_the_default_model_in_place_offline_and_the_cache_heals(tmp_path):
    cache = tmp_path / "cache"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(tmp_path / "backlit.jpg")
    refused = cli("enhance", "backlit.jpg", cache=cache, cwd=tmp_path)  # nothing cached, offline: how to fix it
    assert refused.returncode == 1 and "cliplit models add clip-lit enhancement_model.pth" in refused.stderr
    assert "--model" not in refused.stderr.replace("--model PATH", "")
    export = cli("export", "clip-lit", tmp_path / "m.onnx", cache=cache)
    assert export.returncode == 1 and "pass --model" not in export.stderr  # `export` takes MODEL positionally

    wrong = cli("models", "add", "clip-lit", INIT_CHECKPOINT, cache=cache)  # another (unpublished) checkpoint
    assert wrong.returncode == 1 and "is not clip-lit's published checkpoint" in wrong.stderr
    assert not (cache / "clip-lit").exists()
    added = cli("models", "add", "clip-lit", ENHANCEMENT_CHECKPOINT, cache=cache)
    assert added.returncode == 0, added.stderr
    assert cached_state(cli("models", cache=cache), "clip-lit") == "yes"
    modes = {p.relative_to(cache).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in cache.rglob("*") if p.is_file()}
    assert set(modes.values()) == {0o644}, modes  # readable by the other users of a shared cache
    enhanced = cli("enhance", "backlit.jpg", cache=cache, cwd=tmp_path)  # the README's first command, offline
    assert enhanced.returncode == 0 and (tmp_path / "enhanced" / "backlit.png").is_file(), enhanced.stderr

    weights = cache / "clip-lit" / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[: len(original) // 2])  # truncated
    assert cached_state(cli("models", cache=cache), "clip-lit") == "damaged"
    healed = cli("enhance", "backlit.jpg", "-o", "again", cache=cache, cwd=tmp_path)
    assert healed.returncode == 0, healed.stderr
    assert weights.read_bytes() == original  # rebuilt from the checked download, offline

    foreign = bytearray(original)
    foreign[-4:] = b"\x00\x00\x80\x3f"  # one weight changed: a well-formed file that is not the converted one
    weights.write_bytes(bytes(foreign))
    assert cached_state(cli("models", cache=cache), "clip-lit") == "damaged"
    (cache / "downloads" / "enhancement_model.pth").unlink()  # nothing to rebuild it from
    line = [ln for ln in cli("enhance", "backlit.jpg", "-o", "third", cache=cache, cwd=tmp_path).stderr.splitlines()
            if ln.startswith("error: ")]
    assert len(line) == 1 and "cannot be rebuilt" in line[0] and "cliplit models add clip-lit" in line[0]
