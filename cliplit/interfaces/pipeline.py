"""The `backlit-enhancement` pipeline task (transformers 5 has no image-to-image task of its own).

Registered by `cliplit.interfaces.registration`. The pipeline decodes its inputs with
`cliplit.imaging` and runs them through one `cliplit.engine.Enhancer` built with the pipeline; it
loads no image processor (the engine does all pre- and post-processing).
"""

from __future__ import annotations

import os
from pathlib import Path

from transformers import Pipeline

from ..engine.enhancer import Enhancer
from ..engine.settings import EngineSettings
from ..errors import ImageReadError, display_name, first_line
from ..imaging.codec import DecodedImage, decode_image, encode_pil
from ..imaging.files import read_image
from ..model.catalog import DEFAULT_MODEL_NAME


class DefaultModel(dict):
    """
    The task's `default` entry for transformers' registry: `{"model": (folder, revision)}`, where the
    folder of the default published model is resolved (downloaded and converted once) only when a
    pipeline is actually built without `model=`.
    """

    def __init__(self):
        super().__init__(model=None)

    def __getitem__(self, key):
        if key != "model":
            return super().__getitem__(key)
        from ..model.loading import published_model_folder

        return os.fspath(published_model_folder(DEFAULT_MODEL_NAME)), None


def fetch_image(url: str, timeout=None):
    """The PIL image at `url`; refused at once when `HF_HUB_OFFLINE` is set; any failure is one `ImageReadError`."""
    from ..model.loading import OFFLINE_ENV_VAR, offline

    if offline():
        raise ImageReadError(f"{display_name(url)}: not fetched: {OFFLINE_ENV_VAR} is set (give a local file instead)")
    from transformers.image_utils import load_image

    try:
        return load_image(url, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - httpx / requests / PIL raise many types
        raise ImageReadError(f"{display_name(url)}: cannot fetch the image ({type(error).__name__}: {first_line(error)})") from None


class BacklitEnhancementPipeline(Pipeline):
    """
    Enhance backlit images with a CLIP-LIT model.

    ```python
    >>> import cliplit
    >>> from transformers import pipeline
    >>> enhancer = pipeline("backlit-enhancement")  # the default model; or model="path/or/hub-id"
    >>> enhanced = enhancer("backlit.jpg", strength=1.0)  # a PIL image
    >>> cleaner = pipeline("backlit-enhancement", denoise="auto")  # gain-aware denoising (docs/denoise.md)
    >>> quick = pipeline("backlit-enhancement", settings=EngineSettings(mode="fast"))  # any engine settings
    ```

    Inputs: a local path, a URL, a PIL image, a numpy array or a (C, H, W) tensor, or a list of them.
    Output: one PIL image per input (16-bit grayscale stays 16-bit; alpha is put back).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, settings: EngineSettings | None = None, denoise=None, **kwargs):
        super().__init__(*args, **kwargs)
        changes = {} if denoise is None else {"denoise": denoise}
        self.enhancer = Enhancer(self.model, settings, **changes)  # the network prepared once for every image

    def _sanitize_parameters(self, strength=None, timeout=None, **kwargs):
        preprocess_params = {"timeout": timeout} if timeout is not None else {}
        forward_params = {"strength": strength} if strength is not None else {}
        return preprocess_params, forward_params, {}

    def preprocess(self, image, timeout=None) -> dict:
        if isinstance(image, (str, os.PathLike)) and not str(image).startswith(("http://", "https://")):
            decoded = read_image(Path(image))
        elif isinstance(image, str):
            decoded = decode_image(fetch_image(image, timeout))
        else:
            decoded = decode_image(image)
        return {"source": decoded}

    def _forward(self, model_inputs: dict, strength: float | None = None) -> dict:
        enhanced, _ = self.enhancer.enhance_decoded(model_inputs["source"], strength)
        return {"enhanced": enhanced}

    def postprocess(self, model_outputs: dict):
        enhanced: DecodedImage = model_outputs["enhanced"]
        return encode_pil(enhanced)


__all__ = ["BacklitEnhancementPipeline", "DefaultModel", "fetch_image"]
