"""Registration with transformers' Auto classes and pipeline registry (idempotent)."""

from __future__ import annotations


def register() -> None:
    """Make `AutoConfig`, `AutoModelForImageToImage`, `AutoImageProcessor` and `pipeline("backlit-enhancement")` know CLIP-LIT."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageToImage
    from transformers.pipelines import PIPELINE_REGISTRY

    from .configuration_cliplit import CLIPLITConfig
    from .image_processing_cliplit import CLIPLITImageProcessor
    from .modeling_cliplit import CLIPLITModel
    from .pipeline_cliplit import TASK_NAME, BacklitEnhancementPipeline

    AutoConfig.register(CLIPLITConfig.model_type, CLIPLITConfig, exist_ok=True)
    AutoModel.register(CLIPLITConfig, CLIPLITModel, exist_ok=True)
    AutoModelForImageToImage.register(CLIPLITConfig, CLIPLITModel, exist_ok=True)
    AutoImageProcessor.register(CLIPLITConfig, image_processor_classes={"pil": CLIPLITImageProcessor}, exist_ok=True)
    PIPELINE_REGISTRY.register_pipeline(
        TASK_NAME,
        pipeline_class=BacklitEnhancementPipeline,
        pt_model=AutoModelForImageToImage,
        type="image",
    )
