"""`is_cliplit_checkpoint` tells CLIP-LIT files from other models by their tensor names alone (what the
ComfyUI loader uses to list the CLIP-LIT files among ComfyUI's upscale models), and a lone
`.safetensors` file of our weights loads as the published network."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT, RAVE_CHECKPOINT
from safetensors.torch import save_file

from cliplit.model.detection import is_cliplit_checkpoint
from cliplit.model.loading import load_network

pytestmark = pytest.mark.reference


def test_cliplit_files_of_every_format_are_recognised(tmp_path, converted_model_dir):
    authors = torch.load(ENHANCEMENT_CHECKPOINT, map_location="cpu", weights_only=True)
    torch.save(authors, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    torch.save({key.removeprefix("module."): value for key, value in authors.items()}, tmp_path / "unwrapped.pt")
    save_file({key: value.contiguous() for key, value in authors.items()}, tmp_path / "authors_naming.safetensors")
    for path in (ENHANCEMENT_CHECKPOINT, RAVE_CHECKPOINT, converted_model_dir / "model.safetensors", tmp_path / "legacy.pth",
                 tmp_path / "unwrapped.pt", tmp_path / "authors_naming.safetensors"):
        assert is_cliplit_checkpoint(path), path


def test_other_files_are_not(tmp_path):
    torch.save({"conv_first.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "esrgan_like.pth")
    save_file({"stem.weight": torch.zeros(2, 2)}, tmp_path / "partial.safetensors")  # one of our names is not enough
    (tmp_path / "text.pth").write_text("stem.weight expand.weight\n")
    (tmp_path / "broken.safetensors").write_bytes(b"\xff" * 16)
    (tmp_path / "folder.pth").mkdir()
    os.mkfifo(tmp_path / "pipe.pth")  # never opened: a FIFO would block the read forever
    for name in ("esrgan_like.pth", "partial.safetensors", "text.pth", "broken.safetensors", "folder.pth", "pipe.pth",
                 "missing.pth"):
        assert not is_cliplit_checkpoint(tmp_path / name), name


def test_a_lone_safetensors_file_loads_as_the_published_network(tmp_path, converted_model_dir):
    lone = shutil.copyfile(converted_model_dir / "model.safetensors", tmp_path / "weights.safetensors")
    expected = load_network(converted_model_dir).state_dict()
    got = load_network(lone).state_dict()
    assert all(torch.equal(got[key], expected[key]) for key in expected)
