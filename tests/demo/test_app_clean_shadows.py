"""The demo's "Clean the shadows": ticked by default on the Photo tab (the `enhance` API's own input is not), and
the result says what it found, as the CLI's note does (in-process: the page is built, not launched)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.reference


def test_the_photo_tab_cleans_by_default_and_the_api_does_not(converted_model_dir):
    import app
    from cliplit.model.loading import load_model

    demo = app.build_demo(load_model(converted_model_dir, device="cpu"))
    try:
        boxes = {block.elem_id: block for block in demo.blocks.values() if type(block).__name__ == "Checkbox"}
        assert boxes["denoise"].value is True and "on by default" in boxes["denoise"].label
        assert boxes["video-denoise"].value is False
        api = next(dependency for dependency in demo.config["dependencies"] if dependency.get("api_name") == "enhance")
        api_denoise = demo.blocks[api["inputs"][-1]]
        assert type(api_denoise).__name__ == "Checkbox" and api_denoise.value is False and not api_denoise.visible
    finally:
        demo.service.close()


def test_the_result_says_what_clean_the_shadows_found(converted_model_dir, tmp_path):
    import app
    from cliplit.interfaces.service import EnhancementService
    from cliplit.model.loading import load_model

    enhancer = EnhancementService(load_model(converted_model_dir, device="cpu"))
    with Image.open(app.EXAMPLES_DIR / "backlit_cat.jpg") as example:
        small = example.convert("RGB").resize((160, 120))
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=75)
    with Image.open(buffer) as decoded:
        decoded.convert("RGB").save(tmp_path / "screenshot.png")  # a JPEG saved again as a PNG
    ramp = np.linspace(0.05, 0.9, 160, dtype=np.float32)[None, :, None] * np.array([1.0, 0.8, 0.6], np.float32)
    Image.fromarray((np.repeat(ramp, 120, axis=0) * 255 + 0.5).astype(np.uint8)).save(tmp_path / "clean.png")  # no noise
    try:
        _, enhanced, _, _ = enhancer.enhance_file(str(tmp_path / "screenshot.png"), 1.0, denoise=True)
        status = app.denoise_status(tmp_path / "screenshot.png", enhanced)
        assert status.startswith("  \nNote: screenshot.png: --denoise auto: JPEG history q≈75 found in a PNG")
        _, untouched, _, _ = enhancer.enhance_file(str(tmp_path / "clean.png"), 1.0, denoise=True)
        assert untouched.denoised is None and app.denoise_status(tmp_path / "clean.png", untouched) == ""
    finally:
        enhancer.close()
