"""The learnable latent pair of CLIP-LIT-Latent (the RAVE work, Gaintseva et al., ECCV 2024).

Instead of prompt tokens encoded by CLIP's text tower, two free vectors in CLIP's joint embedding
space: row 0 the negative (backlit) direction, row 1 the positive (well-lit) one. An image's logits
are 100 * cosine(image embedding, row); they are initialized and refined with the same losses and
alternating schedule as CLIP-LIT's prompts. The authors initialize them from a standard normal
distribution (`torch.randn(2, 512)` for ViT-B/32).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from .clip_guidance import cosine_logits
from .prompts import EMBEDDINGS_KEY, NEGATIVE, NUM_PROMPTS, POSITIVE, read_pair_file

LATENT_FILE = "latent_pair.safetensors"
KIND_KEY, KIND = "kind", "latent_pair"


class LatentPair(nn.Module):
    """`embeddings`: parameter (2, projection_dim), row 0 negative (backlit), row 1 positive (well-lit)."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        if embeddings.dim() != 2 or embeddings.shape[0] != NUM_PROMPTS:
            raise ValueError(f"latent pair must have shape (2, projection_dim), got {tuple(embeddings.shape)}")
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())

    @classmethod
    def random(cls, projection_dim: int, generator: torch.Generator | None = None) -> "LatentPair":
        """The authors' initialization: N(0, 1) entries."""
        return cls(torch.randn(NUM_PROMPTS, projection_dim, generator=generator))

    def text_embeddings(self, guidance=None) -> torch.Tensor:
        """The pair itself, (2, projection_dim): the counterpart of `PromptPair.text_embeddings`."""
        return self.embeddings

    def forward(self, image_embeds: torch.Tensor, guidance=None) -> torch.Tensor:
        """`image_embeds`: (B, projection_dim) -> (B, 2) logits 100 * cosine(image, row)."""
        return cosine_logits(image_embeds, self.embeddings)

    def save(self, path: str | Path) -> None:
        save_file({EMBEDDINGS_KEY: self.embeddings.detach().cpu().contiguous()}, str(path),
                  metadata={KIND_KEY: KIND, "negative_index": str(NEGATIVE), "positive_index": str(POSITIVE)})

    @classmethod
    def load(cls, path: str | Path) -> "LatentPair":
        """Read a pair written by `save` (a .safetensors file or a folder holding latent_pair.safetensors)."""
        _, tensors, _ = read_pair_file(path, LATENT_FILE, "latent pair")
        return cls(tensors[EMBEDDINGS_KEY])


__all__ = ["LATENT_FILE", "LatentPair"]
