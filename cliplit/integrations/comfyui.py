"""ComfyUI nodes for CLIP-LIT (ComfyUI's classic node API: `INPUT_TYPES`, `RETURN_TYPES`, `FUNCTION`):

- `CLIPLITModelLoader` (category `loaders`): a model chosen from ComfyUI's `models/cliplit` folder, a
  published name (downloaded there on first use) or a CLIP-LIT file among `models/upscale_models`
  (`cliplit.integrations.comfyui_models`) -> `CLIPLIT_MODEL`;
- `CLIPLITEnhance` (category `image/postprocessing`): `CLIPLIT_MODEL`, `IMAGE` (B, H, W, C) float in
  [0, 1], strength, mode -> the enhanced `IMAGE` (same shape; an alpha channel passes through) and the
  illumination map as a `MASK` (B, H, W), min(L, 1). Every image goes through cliplit's `Enhancer`: the
  whole image when it fits in memory, else cliplit's exact tiles (the pyramid context of the whole image
  in every tile), never naive tiles.

ComfyUI finds the nodes through the repository's top-level `__init__.py`, which also calls `register()`
when ComfyUI loads the pack. Inside ComfyUI, "auto" runs on ComfyUI's device and the nodes honour its
progress bar and Cancel; elsewhere (tests, scripts) they run as plain Python, with cliplit's own cache
as their model folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..engine.settings import DEFAULT_MODE, DEFAULT_PRECISION, MODES, PRECISION_NAMES, EngineSettings
from ..model.architecture import MAX_STRENGTH
from ..model.catalog import DEFAULT_MODEL_NAME
from . import require_extra
from .comfyui_models import MODEL_FOLDER, UPSCALE_FOLDER, find_choice, model_choices, not_found_message, resolve_choice

for _module in ("torch", "numpy", "PIL", "safetensors"):  # what the nodes import; all in ComfyUI's own requirements
    require_extra(_module, "comfyui", "cliplit.integrations.comfyui")

MODEL_TYPE = "CLIPLIT_MODEL"
LOADER_CATEGORY = "loaders"  # with ComfyUI's own loaders (checkpoints, LoRAs, upscale models)
ENHANCE_CATEGORY = "image/postprocessing"  # with ComfyUI's image adjustments (blur, sharpen, blend)
DEVICES = ("auto", "cpu", "cuda")
STRENGTH_STEP = 0.05
GRAY_CHANNELS = (1, 2)  # gray, gray + alpha
ALPHA_CHANNELS = (2, 4)  # gray + alpha, RGB + alpha


def comfy_device():
    """ComfyUI's torch device when running inside ComfyUI, else None."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return None
    return model_management.get_torch_device()


def check_interrupted() -> None:
    """Raise ComfyUI's interruption when the user pressed Cancel (no-op outside ComfyUI)."""
    try:
        import comfy.model_management as model_management
    except ImportError:
        return
    model_management.throw_exception_if_processing_interrupted()


def model_folders() -> tuple[list[Path], list[Path]]:
    """(the folders of `cliplit` models, ComfyUI's upscale-model folders): ComfyUI's `folder_paths` inside
    ComfyUI (extra_model_paths.yaml included); elsewhere cliplit's own cache and no upscale folder."""
    try:
        import folder_paths
    except ImportError:
        from ..model.loading import cache_dir

        return [cache_dir()], []
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        register(folder_paths)
    upscale = folder_paths.get_folder_paths(UPSCALE_FOLDER) if UPSCALE_FOLDER in folder_paths.folder_names_and_paths else []
    return [Path(p) for p in folder_paths.get_folder_paths(MODEL_FOLDER)], [Path(p) for p in upscale]


def register(folder_paths=None) -> None:
    """What the pack does when ComfyUI loads it: add `models/cliplit` to ComfyUI's model folders and, where
    spandrel is installed (it is among ComfyUI's requirements), the CLIP-LIT architecture to spandrel's
    registry, so that ComfyUI's "Load Upscale Model" loads the authors' files too (docs/integrations.md)."""
    from .comfyui_models import register_model_folder

    if folder_paths is None:
        try:
            import folder_paths
        except ImportError:  # not inside ComfyUI (a test or script loading the pack): nothing to register with
            return
    register_model_folder(folder_paths)
    try:
        from .spandrel import install
    except ImportError:  # no spandrel: ComfyUI's upscale nodes cannot run either
        return
    install()


class _Progress:
    """ComfyUI's progress bar over `total` images (no-op outside ComfyUI)."""

    def __init__(self, total: int):
        try:
            import comfy.utils
        except ImportError:
            self._bar = None
        else:
            self._bar = comfy.utils.ProgressBar(total)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)


@dataclass
class CLIPLITModelHandle:
    """What flows along a `CLIPLIT_MODEL` link: the loaded network, the `EngineSettings` the loader chose
    (device, precision), and its engines (one `EnhancerCache`: one `Enhancer` per mode, built on first use)."""

    network: object
    name: str
    settings: EngineSettings
    _engines: object = field(default=None, repr=False)

    def __post_init__(self):
        from ..engine.enhancer import EnhancerCache

        self._engines = EnhancerCache(self.network)

    def enhancer(self, mode: str):
        return self._engines.get(self.settings, mode=mode)


class CLIPLITModelLoader:
    DESCRIPTION = ("Load a CLIP-LIT backlit-enhancement model: a published model (downloaded into models/cliplit on "
                   "first use and checked against its published checksum), a .pth or .safetensors file or a model "
                   "folder in models/cliplit, or a CLIP-LIT file in models/upscale_models.")
    CATEGORY = LOADER_CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The CLIP-LIT network, for CLIP-LIT Backlit Enhance.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (model_choices(*model_folders()), {
                    "default": DEFAULT_MODEL_NAME,
                    "tooltip": "clip-lit is the paper's model; the rave-* and clip-lit-* names are the RAVE paper's. "
                               "Files you put in models/cliplit appear here after a refresh (press R).",
                }),
            },
            "optional": {
                "device": (list(DEVICES), {"default": "auto", "tooltip": "auto: ComfyUI's device"}),
                "precision": (list(PRECISION_NAMES), {"default": DEFAULT_PRECISION,
                                                      "tooltip": "fp32 gives the published pixels; fp16 and bf16 are for GPUs"}),
            },
        }

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        """A listed model, or one typed by hand (an absolute path or a Hub id), instead of ComfyUI's list check."""
        folders, upscale = model_folders()
        return True if find_choice(model, folders, upscale) is not None else not_found_message(model, folders)

    def load(self, model: str, device: str = "auto", precision: str = DEFAULT_PRECISION):
        from ..engine.runtime import resolve_device
        from ..model.loading import load_network

        name = model.strip() or DEFAULT_MODEL_NAME
        resolved = comfy_device() if device == "auto" else None
        settings = EngineSettings(device=str(resolve_device(device if resolved is None else resolved)), precision=precision)
        return (CLIPLITModelHandle(load_network(resolve_choice(name, *model_folders())), name, settings),)


class CLIPLITEnhance:
    DESCRIPTION = ("Enhance backlit photos with CLIP-LIT: brightens the dark, backlit subject and keeps the bright "
                   "background. Large images use cliplit's exact tiles: the same result as on the whole image.")
    CATEGORY = ENHANCE_CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "illumination")
    OUTPUT_TOOLTIPS = ("The enhanced images (an alpha channel passes through).",
                       "The illumination map the network estimated, clipped to 1: dark where it brightened most.")
    FUNCTION = "enhance"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "From Load CLIP-LIT Model."}),
                "image": ("IMAGE", {"tooltip": "The backlit images (a batch is enhanced image by image)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": MAX_STRENGTH, "step": STRENGTH_STEP,
                                       "tooltip": "0: unchanged, 1: the published result, more: brighter"}),
                "mode": (list(MODES), {"default": DEFAULT_MODE,
                                       "tooltip": "exact: the published pixels; fast: the network at 1/4 resolution"}),
            },
        }

    def enhance(self, model: CLIPLITModelHandle, image, strength: float = 1.0, mode: str = DEFAULT_MODE):
        """`image`: (B, H, W, C) float in [0, 1], C = 1-4 -> ((B, H, W, C) enhanced, (B, H, W) illumination).
        An empty batch, or an image with a NaN or infinite value, is refused with one line naming it."""
        import torch

        from ..errors import ImageReadError
        from ..imaging.codec import decode_tensor
        from ..model.architecture import check_strength

        strength = check_strength(strength)
        if image.ndim != 4 or image.shape[0] == 0:
            raise ImageReadError(f"CLIP-LIT Backlit Enhance: the IMAGE input is empty (shape {tuple(image.shape)}): "
                                 "connect a node that gives at least one image")
        enhancer = model.enhancer(mode)
        progress = _Progress(image.shape[0])
        images, masks = [], []
        for index, item in enumerate(image):
            check_interrupted()
            try:
                decoded = decode_tensor(item.permute(2, 0, 1))  # cliplit's checks: channels, NaN and infinity
            except ValueError as error:
                raise ImageReadError(f"CLIP-LIT Backlit Enhance: image {index + 1} of {image.shape[0]}: {error}") from None
            enhanced, illumination = enhancer.enhance_decoded(decoded, strength)
            channels = [enhanced.pixels[..., :1] if item.shape[-1] in GRAY_CHANNELS else enhanced.pixels]
            if item.shape[-1] in ALPHA_CHANNELS:
                channels.append(enhanced.alpha[..., None])
            images.append(torch.cat([torch.from_numpy(part) for part in channels], dim=-1))
            masks.append(torch.from_numpy(illumination).clamp(max=1.0))
            progress.step()
        return (torch.stack(images).to(image.device, image.dtype), torch.stack(masks).to(image.device))


NODE_CLASS_MAPPINGS = {"CLIPLITModelLoader": CLIPLITModelLoader, "CLIPLITEnhance": CLIPLITEnhance}
NODE_DISPLAY_NAME_MAPPINGS = {"CLIPLITModelLoader": "Load CLIP-LIT Model", "CLIPLITEnhance": "CLIP-LIT Backlit Enhance"}

__all__ = ["CLIPLITEnhance", "CLIPLITModelHandle", "CLIPLITModelLoader", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS",
           "register"]
