"""The learnable prompt pair of CLIP-LIT.

Two prompts of `prompt_length` learnable token embeddings each, initialized from the token embedding
of "X X ... X". Index 0 is the negative (backlit) prompt, index 1 the positive (well-lit) prompt.
A prompt is encoded by CLIP's text transformer as [SOT] + learned tokens + [EOT]: positional
embeddings, causal mask, final layer norm, pooled at the EOT position, text projection. (The
authors pad to 77 tokens; with a causal mask the padding after EOT cannot change the EOT state.)
An image's scores are softmax(100 * cosine(image embedding, prompt embedding)) over the two prompts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import DataError, display_name, first_line
from ..safety.reading import require_regular_file
from .clip_guidance import CLIPGuidance, cosine_logits

NEGATIVE = 0  # backlit prompt index
POSITIVE = 1  # well-lit prompt index
NUM_PROMPTS = 2
DEFAULT_PROMPT_LENGTH = 16
INIT_WORD = "X"
PROMPT_FILE = "prompt_pair.safetensors"
EMBEDDINGS_KEY = "embeddings"
AUTHORS_PROMPT_KEYS = ("module.embedding_prompt", "embedding_prompt")


class PromptPair(nn.Module):
    """
    Learnable prompt pair.

    `embeddings`: parameter (2, prompt_length, text_width): the learned token embeddings, row 0 the
    negative prompt, row 1 the positive prompt. `sot_token_id` / `eot_token_id`: the tokenizer's
    start/end-of-text ids, whose (frozen) CLIP embeddings frame the learned tokens.
    """

    def __init__(self, embeddings: torch.Tensor, sot_token_id: int, eot_token_id: int):
        super().__init__()
        if embeddings.dim() != 3 or embeddings.shape[0] != NUM_PROMPTS:
            raise ValueError(f"prompt embeddings must have shape (2, length, width), got {tuple(embeddings.shape)}")
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())
        self.sot_token_id = int(sot_token_id)
        self.eot_token_id = int(eot_token_id)

    @property
    def prompt_length(self) -> int:
        """Number of learned tokens per prompt."""
        return self.embeddings.shape[1]

    @classmethod
    def from_clip(cls, guidance: CLIPGuidance, tokenizer, prompt_length: int = DEFAULT_PROMPT_LENGTH) -> "PromptPair":
        """Both prompts initialized from CLIP's token embeddings of "X X ... X" (`prompt_length` words)."""
        text = " ".join([INIT_WORD] * prompt_length)
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        if len(ids) != prompt_length + 2:
            raise ValueError(
                f"the tokenizer splits {text!r} into {len(ids) - 2} tokens, expected {prompt_length}"
            )
        ids_tensor = torch.tensor(ids[1:-1], device=guidance.mean.device)
        with torch.no_grad():
            token_embeds = guidance.token_embeddings(ids_tensor).float().cpu()
        embeddings = token_embeds.unsqueeze(0).repeat(NUM_PROMPTS, 1, 1)
        return cls(embeddings, ids[0], ids[-1])

    def text_embeddings(self, guidance: CLIPGuidance) -> torch.Tensor:
        """Encode both prompts with CLIP's text tower -> (2, projection_dim), not normalized."""
        device = self.embeddings.device
        frame = guidance.token_embeddings(torch.tensor([self.sot_token_id, self.eot_token_id], device=device))
        frame = frame.to(self.embeddings.dtype)
        sot = frame[0].expand(NUM_PROMPTS, 1, -1)
        eot = frame[1].expand(NUM_PROMPTS, 1, -1)
        sequence = torch.cat([sot, self.embeddings, eot], dim=1)
        return guidance.encode_text_embeddings(sequence, eot_index=self.prompt_length + 1)

    def forward(self, image_embeds: torch.Tensor, guidance: CLIPGuidance) -> torch.Tensor:
        """`image_embeds`: (B, projection_dim) -> (B, 2) logits 100 * cosine(image, prompt)."""
        return cosine_logits(image_embeds, self.text_embeddings(guidance))

    # --------------------------------------------------------------------------- save / load
    def save(self, path: str | Path) -> None:
        """Write the pair as safetensors: tensor "embeddings" (2, L, width) and the token ids as metadata."""
        save_file(
            {EMBEDDINGS_KEY: self.embeddings.detach().cpu().contiguous()},
            str(path),
            metadata={"sot_token_id": str(self.sot_token_id), "eot_token_id": str(self.eot_token_id),
                      "negative_index": str(NEGATIVE), "positive_index": str(POSITIVE)},
        )

    @classmethod
    def load(cls, path: str | Path) -> "PromptPair":
        """Read a pair written by `save` (a .safetensors file or a folder holding prompt_pair.safetensors)."""
        path, tensors, metadata = read_pair_file(path, PROMPT_FILE, "prompt pair")
        if "sot_token_id" not in metadata:
            raise DataError(f"{path}: not a CLIP-LIT prompt pair (no '{EMBEDDINGS_KEY}' tensor or token ids)")
        return cls(tensors[EMBEDDINGS_KEY], int(metadata["sot_token_id"]), int(metadata["eot_token_id"]))

    @classmethod
    def load_authors_pth(cls, path: str | Path, prompt_length: int, sot_token_id: int, eot_token_id: int) -> "PromptPair":
        """
        Read the authors' prompt checkpoint (``torch.save`` of a state dict with "embedding_prompt" of
        shape (2, 77, width): [SOT, tokens..., EOT, padding]); keep the `prompt_length` learned tokens.
        """
        path = require_regular_file(path, "prompt checkpoint")
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise DataError(f"{display_name(path)}: cannot be read as a PyTorch state dict ({first_line(err)})") from None
        for key in AUTHORS_PROMPT_KEYS:
            if isinstance(state, dict) and key in state:
                full = state[key]
                break
        else:
            raise DataError(f"{path}: no 'embedding_prompt' tensor: not an authors' prompt pair")
        if full.dim() != 3 or full.shape[0] != NUM_PROMPTS or full.shape[1] < prompt_length + 2:
            raise DataError(f"{path}: embedding_prompt has shape {tuple(full.shape)}, expected (2, >= {prompt_length + 2}, width)")
        return cls(full[:, 1 : 1 + prompt_length], sot_token_id, eot_token_id)


def read_pair_file(path: str | Path, file_name: str, what: str) -> tuple[Path, dict, dict]:
    """(file, tensors, metadata) of a saved guidance pair: `path` is the .safetensors file or a folder
    holding `file_name`; the tensors must include "embeddings". Errors name the file."""
    from safetensors import safe_open

    path = Path(path)
    if path.is_dir():
        path = path / file_name
    require_regular_file(path, f"{what} file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises several types
        raise DataError(f"{display_name(path)}: not a readable safetensors {what} ({first_line(err)})") from None
    if EMBEDDINGS_KEY not in tensors:
        raise DataError(f"{display_name(path)}: not a {what} (no '{EMBEDDINGS_KEY}' tensor)")
    return path, tensors, metadata


def prompt_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """`logits`: (B, 2) -> (B, 2) softmax scores; column 0 negative (backlit), column 1 positive (well-lit)."""
    return logits.softmax(dim=-1)


__all__ = ["PromptPair", "prompt_probabilities", "NEGATIVE", "POSITIVE", "PROMPT_FILE"]
