"""What ComfyUI's own "Load Upscale Model" -> "Upscale Image (using Model)" does to a CLIP-LIT model,
compared with the CLIP-LIT nodes and the authors' published outputs (a quality figure, not a timing).

When the pack loads, it adds cliplit's spandrel architecture to spandrel's registry, so ComfyUI's
upscale loader accepts the authors' `.pth` files. Its upscale node then cuts every image into 512-pixel
tiles with 32 pixels of overlap and blends them: each tile's pyramid pooling sees only that tile, where
the CLIP-LIT nodes give the whole image's context to every pixel. This script runs ComfyUI's real nodes
(from an unpacked ComfyUI) and the CLIP-LIT Enhance node on each photo, saves as ComfyUI's SaveImage
does (8 bits, truncated), and prints the largest difference in 8-bit levels and the share of pixels that
differ by more than one level: upscale node vs CLIP-LIT node, and each vs the published output
(`<golden>/<stem>.png`, when given).

    python bench/comfyui_upscale_node.py --comfyui /tmp/ComfyUI --model enhancement_model.pth \\
        [--golden ../shared/reference/clip-lit/golden] PHOTO [PHOTO ...]

Run it with a Python that has ComfyUI's requirements (its requirements.txt) and cliplit's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPOSITORY = Path(__file__).resolve().parent.parent
MODEL_NAME = "cliplit_authors.pth"


def saved_levels(image) -> np.ndarray:
    """A ComfyUI IMAGE (1, H, W, 3) as SaveImage writes it: uint8 codes, 255 * x truncated."""
    return np.clip(255.0 * image[0].cpu().numpy(), 0, 255).astype(np.uint8).astype(np.int16)


def compare(a: np.ndarray, b: np.ndarray) -> str:
    difference = np.abs(a - b)
    return f"max {int(difference.max())} levels, {100 * float((difference > 1).mean()):.3f} % of values > 1 level"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--comfyui", type=Path, required=True, help="an unpacked ComfyUI source tree")
    parser.add_argument("--model", type=Path, required=True, help="the authors' CLIP-LIT .pth file")
    parser.add_argument("--golden", type=Path, help="folder of the published outputs, <stem>.png")
    args = parser.parse_args()

    sys.path.insert(0, str(args.comfyui))
    sys.path.insert(1, str(REPOSITORY))
    import torch
    from comfy.cli_args import args as comfy_args

    comfy_args.cpu = not torch.cuda.is_available()  # as `python main.py --cpu` on a machine without a GPU
    import folder_paths
    from comfy_extras.nodes_upscale_model import ImageUpscaleWithModel, UpscaleModelLoader

    from cliplit.integrations.comfyui import NODE_CLASS_MAPPINGS, register

    models = Path(tempfile.mkdtemp(prefix="upscale_models-"))
    try:
        shutil.copyfile(args.model, models / MODEL_NAME)
        folder_paths.add_model_folder_path("upscale_models", str(models), is_default=True)
        register(folder_paths)  # what the pack does when ComfyUI loads it
        upscale_model = UpscaleModelLoader.execute(MODEL_NAME).result[0]
        loader, enhance = NODE_CLASS_MAPPINGS["CLIPLITModelLoader"](), NODE_CLASS_MAPPINGS["CLIPLITEnhance"]()
        (cliplit_model,) = loader.load(str(args.model.resolve()), device="cpu")
        print(f"Load Upscale Model: {type(upscale_model).__name__}, architecture {upscale_model.architecture.name}, "
              f"tiling {upscale_model.tiling.name}")
        for photo in args.photos:
            with Image.open(photo) as opened:
                pixels = np.asarray(opened.convert("RGB"), dtype=np.float32) / 255  # as ComfyUI's LoadImage
            image = torch.from_numpy(pixels)[None]
            tiled = saved_levels(ImageUpscaleWithModel.execute(upscale_model, image).result[0])
            whole = saved_levels(enhance.enhance(cliplit_model, image, 1.0, "exact")[0])
            print(f"{photo.name} ({pixels.shape[1]} x {pixels.shape[0]}): upscale node vs CLIP-LIT node: {compare(tiled, whole)}")
            golden = args.golden / f"{photo.stem}.png" if args.golden else None
            if golden is not None and golden.is_file():
                with Image.open(golden) as opened:
                    published = np.asarray(opened.convert("RGB"), dtype=np.int16)
                print(f"    vs the published output: upscale node {compare(tiled, published)}; "
                      f"CLIP-LIT node {compare(whole, published)}")
    finally:
        shutil.rmtree(models, ignore_errors=True)


if __name__ == "__main__":
    main()
