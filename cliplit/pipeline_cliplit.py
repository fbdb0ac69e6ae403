"""The `backlit-enhancement` pipeline task (transformers 5 has no image-to-image task of its own)."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import Pipeline

from .image_io import read_image
from .image_processing_cliplit import DecodedImage, decode_image, encode_pil
from .inference import enhance_decoded, make_runtime

TASK_NAME = "backlit-enhancement"


class BacklitEnhancementPipeline(Pipeline):
    """
    Enhance backlit images with a CLIP-LIT model.

    ```python
    >>> import cliplit
    >>> from transformers import pipeline
    >>> enhancer = pipeline("backlit-enhancement", model="path/or/hub-id")
    >>> enhanced = enhancer("backlit.jpg", strength=1.0)  # a PIL image
    ```

    Inputs: a local path, a URL, a PIL image, a numpy array or a (C, H, W) tensor, or a list of them.
    Output: one PIL image per input (16-bit grayscale stays 16-bit; alpha is put back).
    """

    _load_processor = False
    _load_image_processor = True
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The network prepared once (channels-last copy on the pipeline's device) for every image.
        self.runtime = make_runtime(self.model)

    def _sanitize_parameters(self, strength=None, timeout=None, **kwargs):
        preprocess_params = {"timeout": timeout} if timeout is not None else {}
        forward_params = {"strength": strength} if strength is not None else {}
        return preprocess_params, forward_params, {}

    def preprocess(self, image, timeout=None) -> dict:
        if isinstance(image, (str, os.PathLike)) and not str(image).startswith(("http://", "https://")):
            decoded = read_image(Path(image))
        elif isinstance(image, str):
            from transformers.image_utils import load_image

            decoded = decode_image(load_image(image, timeout=timeout))
        else:
            decoded = decode_image(image)
        return {"source": decoded}

    def _forward(self, model_inputs: dict, strength: float | None = None) -> dict:
        strength = self.model.resolve_strength(strength)
        enhanced, _ = enhance_decoded(self.model, model_inputs["source"], strength, runtime=self.runtime)
        return {"enhanced": enhanced}

    def postprocess(self, model_outputs: dict):
        enhanced: DecodedImage = model_outputs["enhanced"]
        return encode_pil(enhanced)
