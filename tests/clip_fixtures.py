"""Test helpers: a tiny random CLIP (model + tokenizer) and synthetic backlit / well-lit images.

Nothing here downloads: the CLIP is built from a small ``CLIPConfig`` with random weights, and the
tokenizer from a hand-written byte-level BPE vocabulary, both written with ``save_pretrained``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

TINY_HIDDEN = 32
TINY_PROJECTION = 16
TINY_LAYERS = 5
TINY_HEADS = 2
TINY_PATCH = 32
TINY_IMAGE = 224
TINY_CONTEXT = 77
SEED = 0


def tiny_vocab() -> dict[str, int]:
    """Byte-level BPE vocabulary with the special tokens, lowercase letters and their end-of-word forms."""
    tokens = ["<|startoftext|>", "<|endoftext|>"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    tokens += letters + [f"{c}</w>" for c in letters]
    return {tok: i for i, tok in enumerate(tokens)}


def write_tiny_clip(folder: Path, seed: int = SEED) -> Path:
    """Write a tiny random ``CLIPModel`` plus ``CLIPTokenizer`` to ``folder`` and return it."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[])
    tokenizer.save_pretrained(folder)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": 2 * TINY_HIDDEN,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": TINY_HEADS,
            "max_position_embeddings": TINY_CONTEXT,
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": vocab["<|endoftext|>"],
        },
        vision_config={
            "hidden_size": TINY_HIDDEN,
            "intermediate_size": 2 * TINY_HIDDEN,
            "num_hidden_layers": TINY_LAYERS,
            "num_attention_heads": TINY_HEADS,
            "image_size": TINY_IMAGE,
            "patch_size": TINY_PATCH,
        },
        projection_dim=TINY_PROJECTION,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(folder)
    return folder
