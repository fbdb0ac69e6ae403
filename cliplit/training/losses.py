"""CLIP-LIT losses (Liang et al., "Iterative Prompt Learning for Unsupervised Backlit Image
Enhancement", ICCV 2023). Pure functions of tensors; the CLIP forward passes live in
`cliplit.training.clip_guidance` and `cliplit.training.prompts`.

Notation: logits are (B, 2) = 100 * cosine(image embedding, [negative prompt, positive prompt]);
the positive score S(I) is softmax(logits)[:, 1] (index 0 backlit, index 1 well-lit).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .prompts import NEGATIVE, POSITIVE

IDENTITY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.5)  # shallow -> deep, paper Sec. 3.1
RECONSTRUCTION_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)  # the authors' weights while learning the identity
MARGIN_BACKLIT_WELLLIT = 1.0  # no enhanced result yet
MARGIN_FAR = 0.9  # backlit vs. the rest
MARGIN_NEAR_ONE_RESULT = 0.2  # consecutive results / well-lit, one earlier result
MARGIN_NEAR_TWO_RESULTS = 0.1  # consecutive results / well-lit, two earlier results


def prompt_initialization_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """
    Prompt initialization, paper Eq. (1)-(2):
    y_hat = exp(cos(Phi_image(I), T_p)) / sum_{i in {n, p}} exp(cos(Phi_image(I), T_i)),
    L_initp = -(y log y_hat + (1 - y) log(1 - y_hat)), i.e. the cross-entropy of the two-way
    softmax of `logits` (B, 2) against `labels` (B,) long (0 backlit, 1 well-lit); mean over the batch.
    """
    return F.cross_entropy(logits.float(), labels.long())


def clip_enhancement_loss(logits: torch.Tensor) -> torch.Tensor:
    """
    CLIP-enhance loss, paper Eq. (3):
    L_clip = exp(cos(Phi_image(I_t), T_n)) / sum_{i in {n, p}} exp(cos(Phi_image(I_t), T_i)),
    the probability of the negative (backlit) prompt for the enhanced images, `logits` (B, 2) of
    the enhanced images; mean over the batch -> scalar.
    """
    return logits.float().softmax(dim=-1)[:, NEGATIVE].mean()


def identity_loss(
    output_features: Sequence[torch.Tensor],
    input_features: Sequence[torch.Tensor],
    weights: Sequence[float] = IDENTITY_WEIGHTS,
    reduction: str = "sum",
) -> torch.Tensor:
    """
    Identity loss, paper Eq. (4): L_identity = sum_l alpha_l ||Phi^l_image(I_b) - Phi^l_image(I_t)||^2,
    with alpha = (1, 1, 1, 1, 0.5) from shallow to deep.

    `output_features`, `input_features`: one tensor (B, ...) per depth (the CLIP image encoder's
    features of the enhanced output I_t and of the input I_b). Per image: sum over depths of
    weight * mean squared difference over that depth's features. `reduction="sum"` adds the images
    of the batch (what the authors' code does, and what the default loss weights were tuned with),
    "mean" averages them. Returns a scalar.
    """
    if not len(output_features) == len(input_features) == len(weights):
        raise ValueError(
            f"identity_loss needs as many weights as feature depths, got {len(weights)} weights, "
            f"{len(output_features)} and {len(input_features)} feature tensors"
        )
    per_image = 0.0
    for weight, out, inp in zip(weights, output_features, input_features):
        squared = (out.float() - inp.float()).pow(2)
        per_image = per_image + weight * squared.flatten(1).mean(dim=1)
    if reduction == "sum":
        return per_image.sum()
    if reduction == "mean":
        return per_image.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def rave_guidance_loss(image_embeds: torch.Tensor, residual: torch.Tensor, threshold: float) -> torch.Tensor:
    """
    RAVE guidance loss (Gaintseva et al., ECCV 2024): mean over the batch of (cos(E(I_t), r) - t)^2, for
    the CLIP image embeddings (B, P) of the enhanced images, the residual vector r (P,) and the
    threshold t = cos(mean well-lit embedding, r) (see `cliplit.training.rave`). Returns a scalar.
    """
    cosine = F.normalize(image_embeds.float(), dim=-1) @ F.normalize(residual.float().to(image_embeds.device), dim=0)
    return (cosine - threshold).pow(2).mean()


def positive_scores(logits: torch.Tensor) -> torch.Tensor:
    """Paper Eq. (7): S(I) = softmax over the pair of `logits` (B, 2), positive column -> (B,)."""
    return logits.float().softmax(dim=-1)[:, POSITIVE]


def margin_ranking_loss(lower: torch.Tensor, higher: torch.Tensor, margin: float) -> torch.Tensor:
    """
    Margin ranking term of the prompt refinement, paper Eq. (6): mean over the batch of
    max(0, S(lower) - S(higher) + margin), for positive scores `lower`, `higher` (B,) that should
    satisfy S(higher) >= S(lower) + margin. Equal to torch's MarginRankingLoss(margin)(higher, lower, 1).
    """
    return torch.clamp(lower - higher + margin, min=0).mean()


def prompt_refinement_loss(
    backlit: torch.Tensor,
    welllit: torch.Tensor,
    results: Sequence[torch.Tensor] = (),
) -> torch.Tensor:
    """
    Prompt refinement, paper Eq. (6) and (8), with the authors' margins. Positive scores (B,) of the
    backlit images, the well-lit images, and of the enhanced results of earlier rounds on the same
    backlit images, oldest first (0, 1 or 2 tensors). Orders backlit < results (older < newer) < well-lit:

    - no result: max(0, S(I_b) - S(I_r) + 1.0)
    - one result I_t: m(I_b, I_r, 0.9) + m(I_b, I_t, 0.9) + m(I_t, I_r, 0.2)
    - two results I_t1 (older), I_t2: m(I_b, I_r, 0.9) + m(I_b, I_t1, 0.9) + m(I_t1, I_t2, 0.1) + m(I_t2, I_r, 0.1)

    where m(a, b, margin) = mean(max(0, S(a) - S(b) + margin)). Returns a scalar.
    """
    if len(results) == 0:
        return margin_ranking_loss(backlit, welllit, MARGIN_BACKLIT_WELLLIT)
    if len(results) > 2:
        raise ValueError(f"prompt refinement uses at most two earlier results, got {len(results)}")
    near = MARGIN_NEAR_ONE_RESULT if len(results) == 1 else MARGIN_NEAR_TWO_RESULTS
    loss = margin_ranking_loss(backlit, welllit, MARGIN_FAR) + margin_ranking_loss(backlit, results[0], MARGIN_FAR)
    chain = list(results) + [welllit]
    for lower, higher in zip(chain[:-1], chain[1:]):
        loss = loss + margin_ranking_loss(lower, higher, near)
    return loss


__all__ = [
    "IDENTITY_WEIGHTS",
    "RECONSTRUCTION_WEIGHTS",
    "clip_enhancement_loss",
    "identity_loss",
    "margin_ranking_loss",
    "positive_scores",
    "prompt_initialization_loss",
    "prompt_refinement_loss",
    "rave_guidance_loss",
]
