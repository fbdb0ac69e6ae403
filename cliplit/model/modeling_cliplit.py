"""The CLIP-LIT enhancement network as a transformers `PreTrainedModel`.

The layers and the forward pass are defined once, in plain PyTorch, in `network.py`
(`CLIPLITNetworkMixin`); this module gives them the transformers face: configuration class, weight
initialization, `from_pretrained` / `save_pretrained` / `push_to_hub`, and a `ModelOutput`.
It knows nothing of the inference engine (`cliplit.engine`), which runs the same weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput

from .configuration_cliplit import CLIPLITConfig
from .network import CLIPLITNetworkMixin, apply_illumination, sanitize_pixels


@dataclass
class CLIPLITOutput(ModelOutput):
    """
    Output of [`CLIPLITModel`].

    Args:
        reconstruction (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            The enhanced image, clamp(pixel_values / illumination**strength, 0, 1), values in [0, 1].
        illumination (`torch.FloatTensor` of shape `(batch_size, illumination_channels, height, width)`):
            The predicted illumination map L, floored at `config.illumination_floor` (so strictly positive).
    """

    reconstruction: torch.FloatTensor | None = None
    illumination: torch.FloatTensor | None = None


class CLIPLITPreTrainedModel(PreTrainedModel):
    """Weight initialization and the hooks `from_pretrained` / `save_pretrained` need."""

    config_class = CLIPLITConfig
    config: CLIPLITConfig
    base_model_prefix = "cliplit"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The authors initialize convolutions with N(0, 0.02); PReLU keeps its 0.25 default.
        if isinstance(module, nn.Conv2d):
            module.weight.normal_(0.0, 0.02)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.PReLU):
            module.weight.fill_(0.25)


class CLIPLITModel(CLIPLITNetworkMixin, CLIPLITPreTrainedModel):
    """
    The CLIP-LIT enhancement network: predicts an illumination map L for an image I in [0, 1] and
    returns clamp(I / L**strength, 0, 1).

    Example:

    ```python
    >>> from PIL import Image
    >>> import cliplit
    >>> model = cliplit.CLIPLITModel.from_pretrained("path/or/hub-id")
    >>> enhanced = cliplit.enhance(model, Image.open("backlit.jpg"))  # a PIL image
    ```
    """

    def __init__(self, config: CLIPLITConfig):
        super().__init__(config)
        self._build_layers(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        strength: float | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CLIPLITOutput | tuple[torch.Tensor, torch.Tensor]:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, 3, height, width)`):
                RGB images with values in [0, 1] (see [`CLIPLITImageProcessor`]). NaN reads as 0, +inf as 1,
                and values outside [0, 1] are clipped, so the outputs are always finite.
            strength (`float`, *optional*, defaults to `config.default_strength`):
                Exponent of the illumination map: 0 returns the input, 1 the published enhancement.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        pixel_values = sanitize_pixels(pixel_values)  # no NaN or inf ever comes out (see sanitize_pixels)
        illumination = self.illumination_of_valid(pixel_values)
        reconstruction = apply_illumination(pixel_values, illumination, self.resolve_strength(strength))
        if not return_dict:
            return reconstruction, illumination
        return CLIPLITOutput(reconstruction=reconstruction, illumination=illumination)


__all__ = ["CLIPLITModel", "CLIPLITPreTrainedModel", "CLIPLITOutput"]
