"""RAVE guidance (Gaintseva et al., "RAVE: Residual Vector Embedding for CLIP-Guided Backlit Image
Enhancement", ECCV 2024): a fixed direction in CLIP's image-embedding space, computed once from the
training images; no guidance training.

- m_w, m_b: the means of the L2-normalized CLIP image embeddings of all well-lit and of all backlit
  training images, each normalized;
- residual r = normalize(m_w - m_b), threshold t = cos(m_w, r);
- guidance loss (`cliplit.training.losses.rave_guidance_loss`) = mean over the batch of
  (cos(E(enhanced), r) - t)^2: the enhanced images are pulled to where well-lit images lie along r.

The shifted variant (their `rave_unpaired_shifted` model) removes from r what the text tokens most and
least aligned with it explain: with the N tokens of highest and of lowest cos(token embedding, r),
a = normalize(mean(score * embedding) over the highest), p = normalize(mean(score * embedding) over
the lowest), e = normalize(a + p), r' = normalize(r - e (e . r)).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

RESIDUAL_FILE = "rave_residual.safetensors"
RESIDUAL_KEY, THRESHOLD_KEY = "residual", "threshold"


def normalized_mean(normalized_sum: torch.Tensor, count: int) -> torch.Tensor:
    """The normalized mean of L2-normalized embeddings, from their sum (P,) and their count."""
    return F.normalize(normalized_sum.double() / count, dim=0)


def residual_and_threshold(mean_welllit: torch.Tensor, mean_backlit: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(r, t) from the normalized means (P,): r = normalize(m_w - m_b), t = cos(m_w, r)."""
    mean_welllit, mean_backlit = F.normalize(mean_welllit.double(), dim=0), F.normalize(mean_backlit.double(), dim=0)
    residual = F.normalize(mean_welllit - mean_backlit, dim=0)
    return residual, float(mean_welllit @ residual)


def shift_residual(residual: torch.Tensor, token_embeddings: torch.Tensor, count: int) -> torch.Tensor:
    """The shifted residual (module docstring): `token_embeddings` (V, P), one per text token; `count` N."""
    residual = F.normalize(residual.double(), dim=0)
    tokens = token_embeddings.double()
    scores = F.normalize(tokens, dim=1) @ residual
    order = scores.argsort()
    highest, lowest = order[-count:], order[:count]
    added = F.normalize((tokens[highest] * scores[highest, None]).mean(0), dim=0)
    removed = F.normalize((tokens[lowest] * scores[lowest, None]).mean(0), dim=0)
    direction = F.normalize(added + removed, dim=0)
    return F.normalize(residual - direction * (direction @ residual), dim=0)


def save_residual(path: str | Path, residual: torch.Tensor, threshold: float) -> None:
    save_file({RESIDUAL_KEY: residual.float().cpu().contiguous(), THRESHOLD_KEY: torch.tensor([threshold])}, str(path))


def load_residual(path: str | Path) -> tuple[torch.Tensor, float]:
    """(residual (P,), threshold) from a file written by `save_residual` (or a folder holding one)."""
    path = Path(path)
    tensors = load_file(str(path / RESIDUAL_FILE if path.is_dir() else path))
    return tensors[RESIDUAL_KEY], float(tensors[THRESHOLD_KEY][0])


__all__ = ["RESIDUAL_FILE", "load_residual", "normalized_mean", "residual_and_threshold", "save_residual", "shift_residual"]
