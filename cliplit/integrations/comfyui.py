"""ComfyUI nodes for CLIP-LIT (ComfyUI's classic node API: `INPUT_TYPES`, `RETURN_TYPES`, `FUNCTION`):

- `CLIPLITModelLoader`: a published model's name (clip-lit, rave-unpaired, ...), a `from_pretrained`
  folder, an authors' `.pth` file or a Hub id -> `CLIPLIT_MODEL`;
- `CLIPLITEnhance`: `CLIPLIT_MODEL`, `IMAGE` (B, H, W, C) float in [0, 1], strength, mode -> the enhanced
  `IMAGE` (same shape; an alpha channel passes through) and the illumination map as a `MASK` (B, H, W),
  min(L, 1). Every image goes through cliplit's `Enhancer`: the whole image when it fits in memory, else
  cliplit's exact tiles (the pyramid context of the whole image in every tile), never naive tiles.

ComfyUI finds the nodes through the repository's top-level `__init__.py` when the repository is cloned
into `ComfyUI/custom_nodes`. Inside ComfyUI, "auto" runs on ComfyUI's device and the nodes honour its
progress bar and Cancel; elsewhere (tests, scripts) they run as plain Python.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ..engine.settings import DEFAULT_MODE, DEFAULT_PRECISION, MODES, PRECISION_NAMES
from ..model.catalog import DEFAULT_MODEL_NAME, PUBLISHED_MODELS
from . import require_extra

for _module in ("torch", "numpy", "cv2", "safetensors"):  # what the engine needs; all in cliplit's own dependencies
    require_extra(_module, "comfyui", "cliplit.integrations.comfyui")

MODEL_TYPE = "CLIPLIT_MODEL"
CATEGORY = "image/CLIP-LIT"
DEVICES = ("auto", "cpu", "cuda")
STRENGTH_MAX = 3.0
STRENGTH_STEP = 0.05
RGB_CHANNELS = 3


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
    """What flows along a `CLIPLIT_MODEL` link: the loaded network, where it runs and at what precision,
    and one `Enhancer` per mode (built on first use, thread-safe)."""

    network: object
    name: str
    device: object
    precision: str = DEFAULT_PRECISION
    _enhancers: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def enhancer(self, mode: str):
        from ..engine.enhancer import Enhancer

        with self._lock:
            if mode not in self._enhancers:
                self._enhancers[mode] = Enhancer(self.network, mode=mode, device=self.device, precision=self.precision)
            return self._enhancers[mode]


class CLIPLITModelLoader:
    """Load a CLIP-LIT model: a published name (see `cliplit models`), a from_pretrained folder, an authors' .pth
    file or a Hugging Face Hub id."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        names = ", ".join(PUBLISHED_MODELS)
        return {
            "required": {
                "model": ("STRING", {"default": DEFAULT_MODEL_NAME, "tooltip": f"published name ({names}), folder, .pth file or Hub id"}),
            },
            "optional": {
                "device": (list(DEVICES), {"default": "auto", "tooltip": "auto: ComfyUI's device"}),
                "precision": (list(PRECISION_NAMES), {"default": DEFAULT_PRECISION, "tooltip": "fp32 is the exact one"}),
            },
        }

    def load(self, model: str, device: str = "auto", precision: str = DEFAULT_PRECISION):
        from ..engine.runtime import resolve_device
        from ..model.loading import load_network

        spec = model.strip() or DEFAULT_MODEL_NAME
        resolved = comfy_device() if device == "auto" else None
        resolved = resolve_device(device if resolved is None else resolved)
        return (CLIPLITModelHandle(load_network(spec), spec, resolved, precision),)


class CLIPLITEnhance:
    """Enhance backlit images with CLIP-LIT: IMAGE in, enhanced IMAGE and the illumination map (as a MASK) out.
    Large images use cliplit's exact tiles, so the result is the same as on the whole image."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "illumination")
    FUNCTION = "enhance"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE,),
                "image": ("IMAGE",),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": STRENGTH_MAX, "step": STRENGTH_STEP,
                                       "tooltip": "0: unchanged, 1: the published result"}),
                "mode": (list(MODES), {"default": DEFAULT_MODE, "tooltip": "exact: the published pixels; fast: 1/4 resolution"}),
            },
        }

    def enhance(self, model: CLIPLITModelHandle, image, strength: float = 1.0, mode: str = DEFAULT_MODE):
        """`image`: (B, H, W, C) float in [0, 1], C = 3 or 4 -> ((B, H, W, C) enhanced, (B, H, W) illumination)."""
        import torch

        from ..model.architecture import check_strength
        from ..model.network import apply_illumination

        strength = check_strength(strength)
        enhancer = model.enhancer(mode)
        progress = _Progress(image.shape[0])
        images, masks = [], []
        for item in image:
            check_interrupted()
            pixels = item[..., :RGB_CHANNELS].permute(2, 0, 1).unsqueeze(0).to("cpu", torch.float32)
            illumination = enhancer.illumination(pixels)
            with torch.inference_mode():
                enhanced = apply_illumination(pixels, illumination, strength)[0].permute(1, 2, 0)
            if item.shape[-1] > RGB_CHANNELS:  # alpha (and any extra channel) passes through
                enhanced = torch.cat([enhanced, item[..., RGB_CHANNELS:].to(enhanced)], dim=-1)
            images.append(enhanced.to(image.dtype))
            masks.append(illumination[0, 0].clamp(max=1.0))
            progress.step()
        return (torch.stack(images).to(image.device), torch.stack(masks).to(image.device))


NODE_CLASS_MAPPINGS = {"CLIPLITModelLoader": CLIPLITModelLoader, "CLIPLITEnhance": CLIPLITEnhance}
NODE_DISPLAY_NAME_MAPPINGS = {"CLIPLITModelLoader": "Load CLIP-LIT Model", "CLIPLITEnhance": "CLIP-LIT Backlit Enhance"}

__all__ = ["CLIPLITEnhance", "CLIPLITModelHandle", "CLIPLITModelLoader", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
