"""The loader's model list and what each entry loads, on real folders laid out as ComfyUI's models/cliplit,
an extra_model_paths.yaml folder and models/upscale_models (in-process: the real server is in
test_comfyui_server.py): the published names first, then every .pth / .safetensors file and model folder
of the cliplit folders, then the CLIP-LIT files among the upscale models; a published name is put in place
in the first folder from its checked download; a hand-typed absolute path or Hub id is accepted."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from conftest import ENHANCEMENT_CHECKPOINT

from cliplit.integrations.comfyui_models import find_choice, model_choices, resolve_choice
from cliplit.model.catalog import PUBLISHED_MODELS
from cliplit.model.loading import load_network

pytestmark = pytest.mark.reference

LOCAL = ["converted", "extra.pth", "lone.safetensors", "my.pth", "sub/deeper.pth"]
UPSCALE = ["upscale_models/authors.pth", "upscale_models/legacy.pth", "upscale_models/ours.safetensors"]


@pytest.fixture
def folders(tmp_path, converted_model_dir) -> tuple[list[Path], list[Path]]:
    """([models/cliplit, an extra folder], [models/upscale_models]) holding models of every kind and other files."""
    models, extra, upscale = tmp_path / "models" / "cliplit", tmp_path / "shared" / "cliplit", tmp_path / "models" / "upscale_models"
    for folder in (models / "sub", models / "downloads", extra, upscale):
        folder.mkdir(parents=True)
    weights = converted_model_dir / "model.safetensors"
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / "my.pth")
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / "sub" / "deeper.pth")
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / ".hidden.pth")
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / "downloads" / "enhancement_model.pth")  # a published name's download
    shutil.copytree(converted_model_dir, models / "converted")
    shutil.copyfile(weights, models / "lone.safetensors")
    (models / "notes.txt").write_text("not a model\n")
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, extra / "extra.pth")
    authors = torch.load(ENHANCEMENT_CHECKPOINT, map_location="cpu", weights_only=True)
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, upscale / "authors.pth")
    torch.save(authors, upscale / "legacy.pth", _use_new_zipfile_serialization=False)  # torch < 1.6's format
    shutil.copyfile(weights, upscale / "ours.safetensors")
    torch.save({"conv_first.weight": torch.zeros(64, 3, 3, 3)}, upscale / "esrgan_like.pth")  # another network
    (upscale / "broken.pth").write_bytes(b"PK\x03\x04 not really a zip")
    return [models, extra], [upscale]


def assert_published_network(network) -> None:
    expected = load_network(ENHANCEMENT_CHECKPOINT).state_dict()
    got = network.state_dict()
    assert got.keys() == expected.keys() and all(torch.equal(got[key], expected[key]) for key in expected)


def test_the_list_holds_published_names_then_local_models_then_cliplit_upscale_models(folders):
    assert model_choices(*folders) == list(PUBLISHED_MODELS) + LOCAL + UPSCALE


@pytest.mark.parametrize("entry", LOCAL + UPSCALE)
def test_every_listed_model_loads_as_the_published_network(folders, entry):
    assert_published_network(load_network(resolve_choice(entry, *folders)))


def test_a_published_name_is_put_in_place_in_its_folder_from_the_checked_download(folders):
    (models, extra), upscale = folders
    folder = resolve_choice("clip-lit", [extra, models], upscale)  # found where its download is
    assert folder == models / "clip-lit" and (folder / "cliplit_source.json").is_file()
    assert_published_network(load_network(folder))
    assert model_choices(*folders) == list(PUBLISHED_MODELS) + LOCAL + UPSCALE  # listed once, by its name


def test_a_published_name_that_cannot_be_fetched_says_where_to_put_the_file(folders, monkeypatch):
    from cliplit.errors import ModelNotFoundError

    (models, extra), upscale = folders
    (extra / "downloads").mkdir()
    (extra / "downloads" / "enhancement_model.pth").write_bytes(b"a file that is not the published one")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as raised:
        resolve_choice("clip-lit", [extra, models], upscale)
    message = str(raised.value)
    assert "\n" not in message and f"put enhancement_model.pth into {extra} and choose enhancement_model.pth" in message
    assert not (extra / "clip-lit").exists()


def test_a_hand_typed_absolute_path_or_hub_id_is_taken_and_nothing_climbs_out_of_a_folder(folders, tmp_path):
    assert find_choice(str(ENHANCEMENT_CHECKPOINT), *folders) == ENHANCEMENT_CHECKPOINT
    assert find_choice("someone/cliplit-model", *folders) == "someone/cliplit-model"
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, tmp_path / "models" / "outside.pth")
    assert find_choice("../outside.pth", *folders) is None  # read as models/cliplit/outside.pth, which does not exist
    assert find_choice("my.pth", *folders) == folders[0][0] / "my.pth"
    for unknown in ("missing.pth", "notes.txt", "upscale_models/esrgan_like.pth", "relative/path.pth"):
        assert find_choice(unknown, *folders) is None, unknown
