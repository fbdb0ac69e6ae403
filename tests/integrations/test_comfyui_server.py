"""The nodes inside a real ComfyUI 0.3.64 server (the snapshot in ../shared/comfyui, unpacked into a temporary
folder), installed into its custom_nodes as a user installs them and driven through ComfyUI's HTTP API as
its page drives it: /object_info lists the nodes and the models the loader offers (files put in
models/cliplit, an extra_model_paths.yaml folder and models/upscale_models), the example workflows run
from /prompt to /history and save the published pixels (within one level: SaveImage truncates), and
ComfyUI's own validation refuses an out-of-range strength. Skipped with the reason when the snapshot or
ComfyUI's requirements are missing; under CI=true that is a failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from comfyui_server import (
    PYTHON_ENV_VAR,
    SNAPSHOT_DIR,
    comfyui_python,
    comfyui_requirements,
    comfyui_server,
    get_json,
    missing_requirements,
    post_prompt,
    prompt_from_workflow,
    saved_images,
    snapshot_archive,
    wait_for_history,
)
from conftest import ENHANCEMENT_CHECKPOINT, REPO_ROOT, golden_for, in_ci, smallest_reference_image
from helpers import free_port
from PIL import Image

pytestmark = [pytest.mark.slow, pytest.mark.reference]

WORKFLOWS = REPO_ROOT / "example_workflows"
PACK = "cliplit"
MAX_LEVEL_DIFFERENCE = 1  # SaveImage truncates 255 * x; the published outputs are rounded
UPSCALE_NODE_MAX_LEVELS = 3  # measured on the three reference photos (docs/integrations.md)
STITCH_SPACING = 16  # the strength comparison's ImageStitch spacing (example_workflows/strength_comparison.json)
PUBLISHED_NAMES = ["clip-lit", "rave-unpaired", "rave-paired", "rave-unpaired-shifted", "clip-lit-paired",
                   "clip-lit-unpaired", "clip-lit-latent-paired", "clip-lit-latent-unpaired"]
LISTED_LOCAL = ["converted", "extra_model.pth", "my_model.pth", "upscale_models/authors.pth"]


def require_comfyui() -> None:
    archive = snapshot_archive()
    if archive is None:
        reason = f"{SNAPSHOT_DIR}: no ComfyUI snapshot (ComfyUI-*.tar.gz)"
    else:
        missing = missing_requirements(comfyui_python(), comfyui_requirements(archive))
        reason = (f"ComfyUI's requirements are missing in {comfyui_python()} ({', '.join(missing)}): run "
                  f"`python tests/integrations/comfyui_server.py install-requirements` or set {PYTHON_ENV_VAR}") if missing else None
    if reason is None:
        return
    if in_ci():
        pytest.fail(reason + " (CI=true: required)", pytrace=False)
    pytest.skip(reason)


def stage(tmp: Path, converted_model_dir: Path) -> tuple[Path, Path]:
    """What a user would have put in place before starting ComfyUI: models and photos. Returns (the base
    folder to be, the extra_model_paths.yaml)."""
    base = tmp / "base"
    models = base / "models" / PACK
    (models / "downloads").mkdir(parents=True)
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / "downloads" / "enhancement_model.pth")  # as after the first download
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, models / "my_model.pth")
    shutil.copytree(converted_model_dir, models / "converted")
    (models / "notes.txt").write_text("not a model\n")
    upscale = base / "models" / "upscale_models"
    upscale.mkdir(parents=True)
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, upscale / "authors.pth")
    torch.save({"conv.weight": torch.zeros(4, 3, 3, 3)}, upscale / "not_cliplit.pth")  # another network's file
    extra = tmp / "shared-models"
    (extra / PACK).mkdir(parents=True)
    shutil.copyfile(ENHANCEMENT_CHECKPOINT, extra / PACK / "extra_model.pth")
    yaml = tmp / "extra_model_paths.yaml"
    yaml.write_text(f"shared:\n    base_path: {extra}\n    {PACK}: {PACK}\n")
    photo = smallest_reference_image()
    (base / "input" / "backlit").mkdir(parents=True)
    shutil.copyfile(photo, base / "input" / "photo.jpg")
    for name in ("a.jpg", "b.jpg"):  # one size: the folder loader stacks its photos into one batch
        shutil.copyfile(photo, base / "input" / "backlit" / name)
    return base, yaml


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, converted_model_dir):
    """The running server: (ServedApp, base folder, /object_info)."""
    require_comfyui()
    tmp = tmp_path_factory.mktemp("comfyui")
    _, yaml = stage(tmp, converted_model_dir)
    with comfyui_server(tmp, free_port(), extra_model_paths=yaml) as (served, _, base):
        yield served, base, get_json(served.url, "/object_info")
    assert "Traceback" not in served.output.split("Starting server")[-1], served.output[-4000:]
    pack_lines = [line for line in served.output.splitlines() if f"custom_nodes/{PACK}" in line]
    assert pack_lines and not any("IMPORT FAILED" in line for line in pack_lines), served.output[-4000:]


def workflow(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.json").read_text())


def run(comfyui, prompt: dict, ui_workflow: dict | None = None) -> dict[str, list[Path]]:
    """Post `prompt`, wait for it; {node id: saved files}. Fails with ComfyUI's answer if it did not run."""
    served, base, _ = comfyui
    status, answer = post_prompt(served.url, prompt, ui_workflow)
    assert status == 200, answer
    entry = wait_for_history(served.url, answer["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    return saved_images(entry, base / "output")


def levels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_published(path: Path) -> None:
    golden = levels(golden_for(smallest_reference_image()))
    got = levels(path)
    assert got.shape == golden.shape and np.abs(got - golden).max() <= MAX_LEVEL_DIFFERENCE


def set_inputs(prompt: dict, class_type: str, **values) -> dict:
    for node in prompt.values():
        if node["class_type"] == class_type:
            node["inputs"].update(values)
    return prompt


def test_object_info_lists_the_nodes_and_the_models_of_the_model_folders(comfyui):
    served, _, info = comfyui
    loader, enhance = info["CLIPLITModelLoader"], info["CLIPLITEnhance"]
    assert (loader["display_name"], loader["category"]) == ("Load CLIP-LIT Model", "loaders")
    assert (enhance["display_name"], enhance["category"]) == ("CLIP-LIT Backlit Enhance", "image/postprocessing")
    for node in (loader, enhance):
        assert node["description"] == node["description"].strip() and "\n" not in node["description"]
        assert len(node["output_tooltips"]) == len(node["output"])
    choices = loader["input"]["required"]["model"][0]
    # the published names, then models/cliplit and the yaml's folder, then CLIP-LIT files among the upscale models
    assert choices == PUBLISHED_NAMES + LISTED_LOCAL
    assert enhance["input"]["required"]["strength"][1]["max"] == 4.0
    assert get_json(served.url, "/workflow_templates")[PACK] and sorted(get_json(served.url, "/workflow_templates")[PACK]) == [
        "batch_from_folder", "photo_enhance", "strength_comparison"]
    assert get_json(served.url, f"/api/workflow_templates/{PACK}/photo_enhance.json") == workflow("photo_enhance")


def test_photo_workflow_saves_the_published_pixels_and_the_illumination_carrying_the_workflow(comfyui):
    _, base, info = comfyui
    ui = workflow("photo_enhance")
    prompt = set_inputs(prompt_from_workflow(ui, info), "LoadImage", image="photo.jpg")
    saved = run(comfyui, prompt, ui)
    enhanced, illumination = saved["4"], saved["6"]
    assert len(enhanced) == len(illumination) == 1
    assert_published(enhanced[0])
    with Image.open(enhanced[0]) as image:
        assert json.loads(image.text["workflow"]) == ui  # drag the PNG into ComfyUI: the workflow comes back
    mask = levels(illumination[0])
    assert mask.shape == levels(enhanced[0]).shape and 0 < mask.mean() < 255
    assert np.array_equal(mask[..., 0], mask[..., 1])  # the MASK as a gray image
    # the published name was put in place in models/cliplit, checksum-checked and converted
    assert (base / "models" / PACK / "clip-lit" / "model.safetensors").is_file()


def test_batch_workflow_enhances_every_photo_of_the_folder(comfyui):
    _, _, info = comfyui
    saved = run(comfyui, prompt_from_workflow(workflow("batch_from_folder"), info))["4"]
    assert len(saved) == 2
    for path in saved:
        assert_published(path)


def test_strength_comparison_with_a_file_from_the_models_folder(comfyui):
    _, _, info = comfyui
    prompt = set_inputs(prompt_from_workflow(workflow("strength_comparison"), info), "LoadImage", image="photo.jpg")
    prompt = set_inputs(prompt, "CLIPLITModelLoader", model="my_model.pth")
    (strip,) = run(comfyui, prompt)["9"]
    panels = levels(strip)
    golden = levels(golden_for(smallest_reference_image()))
    height, width, _ = golden.shape
    assert panels.shape == (height, 4 * width + 3 * STITCH_SPACING, 3)
    original, weak, full, strong = (panels[:, k * (width + STITCH_SPACING):k * (width + STITCH_SPACING) + width] for k in range(4))
    assert np.abs(full - golden).max() <= MAX_LEVEL_DIFFERENCE
    assert original.mean() < weak.mean() < full.mean() < strong.mean()


def test_every_kind_of_model_entry_loads(comfyui):
    """A hand-typed absolute path, a file of the extra_model_paths.yaml folder, a CLIP-LIT file among the upscale
    models and a from_pretrained folder: each gives the published pixels."""
    _, _, info = comfyui
    ui = workflow("photo_enhance")
    for model in (str(ENHANCEMENT_CHECKPOINT), "extra_model.pth", "upscale_models/authors.pth", "converted"):
        prompt = set_inputs(prompt_from_workflow(ui, info), "LoadImage", image="photo.jpg")
        prompt = set_inputs(prompt, "CLIPLITModelLoader", model=model)
        del prompt["5"], prompt["6"]  # the illumination branch
        (enhanced,) = run(comfyui, prompt)["4"]
        assert_published(enhanced)


def test_comfyuis_validation_refuses_an_out_of_range_strength_and_an_unknown_model(comfyui):
    served, _, info = comfyui
    prompt = set_inputs(prompt_from_workflow(workflow("photo_enhance"), info), "LoadImage", image="photo.jpg")
    status, answer = post_prompt(served.url, set_inputs(json.loads(json.dumps(prompt)), "CLIPLITEnhance", strength=5.0))
    assert status == 400
    errors = answer["node_errors"]["3"]["errors"]
    assert [error["type"] for error in errors] == ["value_bigger_than_max"] and errors[0]["extra_info"]["input_name"] == "strength"
    status, answer = post_prompt(served.url, set_inputs(prompt, "CLIPLITModelLoader", model="no_such_model.pth"))
    assert status == 400
    (error,) = answer["node_errors"]["2"]["errors"]
    assert error["type"] == "custom_validation_failed" and "no_such_model.pth: no such model in" in error["details"]


def test_load_upscale_model_takes_the_authors_file_within_its_tile_caveat(comfyui):
    """ComfyUI's own "Load Upscale Model" -> "Upscale Image (using Model)" on the authors' file (the pack registers
    cliplit's spandrel architecture): its 512-pixel tiles each see only their own context, so the pixels may
    differ from the published ones by a few levels (docs/integrations.md, bench/comfyui_upscale_node.py)."""
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "photo.jpg"}},
              "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "authors.pth"}},
              "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
              "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "upscale-node"}}}
    (saved,) = run(comfyui, prompt)["4"]
    golden = levels(golden_for(smallest_reference_image()))
    assert np.abs(levels(saved) - golden).max() <= UPSCALE_NODE_MAX_LEVELS
