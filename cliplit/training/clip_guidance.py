"""Frozen CLIP used as a differentiable critic during CLIP-LIT training.

Images in [0, 1] are resized to CLIP's input size (224x224 for ViT-B/32, no crop) and normalized with
CLIP's mean and standard deviation inside torch, so gradients flow back to the enhancement network.

With `--identity_model vit`, the identity loss uses this CLIP's vision hidden states at five evenly
spaced depths from the embedding output (the ViT's "stem": patch embedding + position embedding +
pre-layernorm) to the last encoder layer, indices round(linspace(0, num_layers, 5)), i.e. 0, 3, 6, 9,
12 for ViT-B/32: like the authors' RN101 stages (`cliplit.training.identity`), a stem plus four equal
sections. The default identity features are the authors' RN101's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# OpenAI CLIP normalization, used when the checkpoint has no image processor config.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
NUM_IDENTITY_DEPTHS = 5
# The authors resize tensors with torchvision's `Resize((224, 224))`, which did not antialias tensors
# (its `antialias=None` default) in the torchvision of their code.
AUTHORS_ANTIALIAS = False
LOGIT_SCALE = 100.0  # the paper scores images with softmax(100 * cosine), not CLIP's learned scale


def identity_depths(num_layers: int, count: int = NUM_IDENTITY_DEPTHS) -> tuple[int, ...]:
    """Indices into the vision tower's ``hidden_states`` (length num_layers + 1), evenly spaced from 0 to num_layers."""
    if num_layers < count - 1:
        raise ValueError(f"a CLIP vision tower with {num_layers} layers has fewer than {count} distinct depths")
    return tuple(round(i * num_layers / (count - 1)) for i in range(count))


def preprocess_for_clip(
    images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int, antialias: bool = AUTHORS_ANTIALIAS
) -> torch.Tensor:
    """
    Differentiable CLIP preprocessing.

    `images`: (B, 3, H, W) in [0, 1]; `mean`, `std`: (3,) -> (B, 3, size, size) normalized pixels.
    Resized bilinearly to size x size (no crop: the whole image is seen), without antialiasing by
    default, as the authors' `transforms.Resize((224, 224))` on tensors did.
    """
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)
    return (images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def cosine_logits(image_embeds: torch.Tensor, text_embeds: torch.Tensor, scale: float = LOGIT_SCALE) -> torch.Tensor:
    """`image_embeds`: (B, P), `text_embeds`: (K, P) -> (B, K) logits = scale * cosine similarity."""
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    return scale * image_embeds @ text_embeds.t()


class CLIPGuidance(nn.Module):
    """
    A frozen ``transformers.CLIPModel`` with the entry points CLIP-LIT training needs.

    Holds `clip` (the CLIPModel, eval mode, no gradients) and buffers `mean`, `std` (3,).
    """

    def __init__(self, clip_model, mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD):
        super().__init__()
        self.clip = clip_model.eval()
        self.clip.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32), persistent=False)
        self.image_size = int(clip_model.config.vision_config.image_size)
        self.depths = identity_depths(int(clip_model.config.vision_config.num_hidden_layers))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, **kwargs) -> "CLIPGuidance":
        """Load a CLIP checkpoint (Hub id or folder); mean/std come from its image processor config if present."""
        from transformers import CLIPModel

        clip_model = CLIPModel.from_pretrained(str(name_or_path), **kwargs)
        mean, std = CLIP_MEAN, CLIP_STD
        try:
            from transformers import AutoImageProcessor

            processor = AutoImageProcessor.from_pretrained(str(name_or_path))
            mean, std = tuple(processor.image_mean), tuple(processor.image_std)
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # no preprocessor_config.json: OpenAI's statistics
        return cls(clip_model, mean, std)

    def train(self, mode: bool = True) -> "CLIPGuidance":
        """CLIP stays in eval mode whatever the caller asks."""
        super().train(False)
        return self

    # ----------------------------------------------------------------------------------- images
    def image_features(
        self, images: torch.Tensor, with_hidden_states: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """
        `images`: (B, 3, H, W) in [0, 1].

        Returns the projected image embeddings (B, projection_dim), not normalized, and, if asked, the
        vision hidden states at ``self.depths``: a list of five (B, tokens, hidden) tensors.
        """
        pixels = preprocess_for_clip(images, self.mean.to(images.dtype), self.std.to(images.dtype), self.image_size)
        out = self.clip.vision_model(pixel_values=pixels, output_hidden_states=with_hidden_states, return_dict=True)
        embeds = self.clip.visual_projection(out.pooler_output)
        hidden = [out.hidden_states[i] for i in self.depths] if with_hidden_states else None
        return embeds, hidden

    # ------------------------------------------------------------------------------------- text
    @property
    def projection_dim(self) -> int:
        """Dimension of CLIP's joint embedding space."""
        return int(self.clip.config.projection_dim)

    @property
    def text_width(self) -> int:
        """Width of the text transformer's token embeddings."""
        return int(self.clip.config.text_config.hidden_size)

    def token_embeddings(self, token_ids: torch.Tensor) -> torch.Tensor:
        """`token_ids`: (...,) long -> (..., text_width) token embeddings (no positions)."""
        return self.clip.text_model.embeddings.token_embedding(token_ids)

    def encode_text_embeddings(self, inputs_embeds: torch.Tensor, eot_index: int) -> torch.Tensor:
        """
        Run CLIP's text transformer on token embeddings.

        `inputs_embeds`: (N, S, text_width) token embeddings of [SOT, tokens..., EOT]; positional
        embeddings are added, a causal mask applied, the final layer norm taken, the state at
        `eot_index` pooled and projected -> (N, projection_dim).
        """
        from transformers.masking_utils import create_causal_mask

        text_model = self.clip.text_model
        hidden = text_model.embeddings(inputs_embeds=inputs_embeds)
        mask = create_causal_mask(config=text_model.config, inputs_embeds=hidden, attention_mask=None, cache=None)
        hidden = text_model.encoder(inputs_embeds=hidden, attention_mask=mask, is_causal=True).last_hidden_state
        hidden = text_model.final_layer_norm(hidden)
        return self.clip.text_projection(hidden[:, eot_index])


__all__ = ["CLIPGuidance", "CLIP_MEAN", "CLIP_STD", "cosine_logits", "identity_depths", "preprocess_for_clip"]
