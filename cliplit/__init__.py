"""cliplit: CLIP-LIT backlit image enhancement (Liang et al., ICCV 2023) in transformers conventions.

Importing the package registers the model with transformers' Auto classes (`AutoConfig`,
`AutoModelForImageToImage`, `AutoImageProcessor`) and the `backlit-enhancement` pipeline task.
"""

from .configuration_cliplit import CLIPLITConfig
from .errors import CheckpointError, CLIPLITError, ImageReadError, ModelNotFoundError
from .image_processing_cliplit import CLIPLITImageProcessor
from .loading import load_model
from .modeling_cliplit import CLIPLITModel, CLIPLITOutput, CLIPLITPreTrainedModel
from .registration import register

__version__ = "0.1.0"

register()

__all__ = [
    "CLIPLITConfig",
    "CLIPLITModel",
    "CLIPLITOutput",
    "CLIPLITPreTrainedModel",
    "CLIPLITImageProcessor",
    "CLIPLITError",
    "CheckpointError",
    "ImageReadError",
    "ModelNotFoundError",
    "load_model",
]
