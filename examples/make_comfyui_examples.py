"""Run the example workflows in a real ComfyUI server and keep what they make: for each
`example_workflows/<name>.json`, the first PNG its SaveImage wrote (it carries the workflow: dropped onto
ComfyUI's page, it loads it) as `example_workflows/<name>.png`, and a small `<name>.jpg`, the thumbnail
that ComfyUI's template browser shows; and `docs/images/comfyui_nodes.png`, the nodes in ComfyUI's page
(headless Chromium) with the loader's model list open.

The server is the test suite's (`tests/integrations/comfyui_server.py`: the ComfyUI snapshot in
../shared/comfyui, unpacked into a temporary folder, this repository in its custom_nodes); each workflow is
loaded into the page and turned into a prompt by ComfyUI's own frontend (checked against the tests'
conversion), then queued. The photos are this folder's, at 384 pixels wide (small PNGs); the model is the
authors' checkpoint, put where the loader's first download of `clip-lit` puts it.

    python examples/make_comfyui_examples.py --checkpoint ../shared/reference/clip-lit/enhancement_model.pth

Needs ComfyUI's requirements (`python tests/integrations/comfyui_server.py install-requirements`, or a
Python named by CLIPLIT_COMFYUI_PYTHON), playwright and Chromium.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPOSITORY / "tests"), str(REPOSITORY / "tests" / "integrations")]

from comfyui_server import (  # noqa: E402
    comfyui_server,
    get_json,
    post_prompt,
    prompt_from_workflow,
    saved_images,
    wait_for_history,
)
from helpers import free_port  # noqa: E402

WORKFLOWS = REPOSITORY / "example_workflows"
SCREENSHOT = REPOSITORY / "docs" / "images" / "comfyui_nodes.png"
PHOTO_WIDTH = 384
THUMBNAIL_SIZE = (320, 320)
VIEWPORT = {"width": 1500, "height": 820}
PAGE_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 900_000  # CPU inference on a shared machine; not a performance check
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]
APP = "(window.app ?? window.comfyAPI?.app?.app)"
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}  # no first-run dialog, no minimap


def small_photo(source: Path, destination: Path, height: int | None = None) -> None:
    with Image.open(source) as photo:
        size = (PHOTO_WIDTH, height or round(photo.height * PHOTO_WIDTH / photo.width))
        photo.convert("RGB").resize(size, Image.LANCZOS).save(destination, quality=95)


def stage(base: Path, checkpoint: Path) -> None:
    """Photos in input/ (the batch folder's two of one size), the model where `clip-lit`'s first use puts its
    download, the authors' file in models/cliplit as a user puts it, and the page's settings."""
    (base / "input" / "backlit").mkdir(parents=True)
    small_photo(REPOSITORY / "examples" / "backlit_cat.jpg", base / "input" / "backlit_cat.jpg")
    for name in ("backlit_cat.jpg", "backlit_coffee.jpg"):
        small_photo(REPOSITORY / "examples" / name, base / "input" / "backlit" / name, height=256)
    models = base / "models" / "cliplit"
    (models / "downloads").mkdir(parents=True)
    shutil.copyfile(checkpoint, models / "downloads" / "enhancement_model.pth")
    shutil.copyfile(checkpoint, models / "enhancement_model.pth")
    (base / "models" / "upscale_models").mkdir(parents=True)
    shutil.copyfile(checkpoint, base / "models" / "upscale_models" / "clip_lit_authors.pth")
    (base / "user" / "default").mkdir(parents=True)
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS))


def load_into_page(page, name: str) -> dict:
    """Open `example_workflows/<name>.json` in the page (a tab named after it), as a user opens a template."""
    workflow = json.loads((WORKFLOWS / f"{name}.json").read_text())
    page.evaluate(f"async ([workflow, name]) => await {APP}.loadGraphData(workflow, true, true, name)", [workflow, name])
    return workflow


def frontend_prompt(page) -> dict:
    """The open workflow turned into an API prompt by ComfyUI's frontend."""
    return page.evaluate(f"async () => (await {APP}.graphToPrompt()).output")


def run_example(url: str, page, name: str, object_info: dict, output: Path) -> None:
    workflow = load_into_page(page, name)
    prompt = frontend_prompt(page)
    ours = prompt_from_workflow(workflow, object_info)
    assert {node: (value["class_type"], value["inputs"]) for node, value in prompt.items()} == {
        node: (value["class_type"], value["inputs"]) for node, value in ours.items()}, name
    status, answer = post_prompt(url, prompt, workflow)
    assert status == 200, answer
    entry = wait_for_history(url, answer["prompt_id"])
    assert entry["status"]["status_str"] == "success", entry["status"]
    enhanced = sorted(path for paths in saved_images(entry, output).values() for path in paths if "illumination" not in path.name)
    shutil.copyfile(enhanced[-1], WORKFLOWS / f"{name}.png")  # a batch: its last photo
    images = [Image.open(path).convert("RGB") for path in enhanced]
    sheet = Image.new("RGB", (sum(image.width for image in images), max(image.height for image in images)), "white")
    for index, image in enumerate(images):  # a batch: all its photos side by side
        sheet.paste(image, (sum(previous.width for previous in images[:index]), 0))
    sheet.thumbnail(THUMBNAIL_SIZE)
    sheet.save(WORKFLOWS / f"{name}.jpg", quality=85)
    print(f"{name}: {WORKFLOWS / name}.png, .jpg")


def screenshot_with_the_model_list(page) -> None:
    """The photo workflow run from the page (its Run button), then the loader's `model` list opened by a click
    on its widget."""
    load_into_page(page, "photo_enhance")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_function(f"() => {APP}.graph.nodes.filter(n => n.type === 'SaveImage').every(n => n.imgs?.length)",
                           timeout=RUN_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    x, y = page.evaluate(f"""() => {{
        const app = {APP}, canvas = app.canvas, node = app.graph.nodes.find(n => n.type === "CLIPLITModelLoader");
        const widget = node.widgets.find(w => w.name === "model");
        const [x, y] = canvas.ds.convertOffsetToCanvas([node.pos[0] + node.size[0] / 2, node.pos[1] + widget.last_y + 10]);
        const box = canvas.canvas.getBoundingClientRect();
        return [box.left + x, box.top + y];
    }}""")
    page.mouse.click(x, y)
    page.wait_for_selector(".litecontextmenu", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOT))
    print(f"screenshot: {SCREENSHOT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the authors' enhancement_model.pth")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="comfyui-examples-") as scratch:
        tmp = Path(scratch)
        stage(tmp / "base", args.checkpoint.resolve())
        with comfyui_server(tmp, free_port()) as (served, _, base), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(served.url, timeout=PAGE_TIMEOUT_MS)
                page.wait_for_function(f"() => {APP}?.graph !== undefined", timeout=PAGE_TIMEOUT_MS)
                object_info = get_json(served.url, "/object_info")
                for name in ("photo_enhance", "batch_from_folder", "strength_comparison"):
                    run_example(served.url, page, name, object_info, base / "output")
                screenshot_with_the_model_list(page)
            finally:
                browser.close()


if __name__ == "__main__":
    main()
