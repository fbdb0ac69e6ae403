"""CLIP-LIT-Latent's latent pair and RAVE's residual, threshold and loss, against values worked out by
hand on tiny examples."""

from __future__ import annotations

import math

import pytest
import torch

from cliplit.training.latent import LatentPair
from cliplit.training.losses import clip_enhancement_loss, rave_guidance_loss
from cliplit.training.rave import (
    load_residual,
    normalized_mean,
    residual_and_threshold,
    save_residual,
    shift_residual,
)

SQRT_HALF = math.sqrt(0.5)


def test_latent_pair_logits_are_100_cosines_and_the_enhancement_loss_uses_the_backlit_row():
    pair = LatentPair(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))  # backlit row along x, well-lit along y
    image = torch.tensor([[1.0, 1.0], [0.0, 5.0]])
    logits = pair(image)
    torch.testing.assert_close(logits, torch.tensor([[100 * SQRT_HALF, 100 * SQRT_HALF], [0.0, 100.0]]))
    # first image: equal logits -> p(backlit) 0.5; second: p(backlit) = 1 / (1 + e^100) ~ 0
    torch.testing.assert_close(clip_enhancement_loss(logits), torch.tensor(0.25), atol=1e-6, rtol=0)
    logits.sum().backward()
    assert pair.embeddings.grad is not None and pair.text_embeddings() is pair.embeddings


def test_latent_pair_is_initialized_from_a_standard_normal_and_saved(tmp_path):
    generator = torch.Generator().manual_seed(3)
    pair = LatentPair.random(16, generator)
    expected = torch.randn(2, 16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(pair.embeddings.detach(), expected)
    pair.save(tmp_path / "latent_pair.safetensors")
    assert torch.equal(LatentPair.load(tmp_path).embeddings, pair.embeddings)
    with pytest.raises(ValueError, match="shape"):
        LatentPair(torch.zeros(3, 16))


def test_rave_residual_and_threshold_by_hand():
    # well-lit embeddings (normalized) along (1, 0) and (0.6, 0.8); backlit ones along (0, 1)
    welllit = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    backlit = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    mean_w = normalized_mean(welllit.sum(0), 2)  # (0.8, 0.4) / |.| = (2, 1) / sqrt(5)
    mean_b = normalized_mean(backlit.sum(0), 2)  # (0, 1)
    torch.testing.assert_close(mean_w, torch.tensor([2.0, 1.0], dtype=torch.float64) / math.sqrt(5))
    residual, threshold = residual_and_threshold(mean_w, mean_b)
    # m_w - m_b = (2/sqrt5, 1/sqrt5 - 1)
    difference = torch.tensor([2 / math.sqrt(5), 1 / math.sqrt(5) - 1], dtype=torch.float64)
    torch.testing.assert_close(residual, difference / difference.norm())
    assert threshold == pytest.approx(float(mean_w @ (difference / difference.norm())))
    assert 0 < threshold < 1


def test_rave_loss_is_the_mean_squared_gap_to_the_threshold():
    residual = torch.tensor([1.0, 0.0])
    embeds = torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # cosines 1, 0, sqrt(0.5)
    threshold = 0.5
    expected = ((1 - 0.5) ** 2 + (0 - 0.5) ** 2 + (SQRT_HALF - 0.5) ** 2) / 3
    assert rave_guidance_loss(embeds, residual, threshold).item() == pytest.approx(expected, rel=1e-6)
    assert rave_guidance_loss(torch.tensor([[0.5, math.sqrt(0.75)]]), residual, 0.5).item() == pytest.approx(0, abs=1e-12)


def test_shifting_removes_the_token_direction_and_keeps_a_unit_vector():
    residual = torch.tensor([1.0, 1.0, 0.0])
    tokens = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    # scores = cos(token, r) = (sqrt .5, 0, -sqrt .5): the highest is token 0, the lowest token 2
    shifted = shift_residual(residual, tokens, count=1)
    added = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # normalize(sqrt.5 * (1, 0, 0))
    removed = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)  # normalize(-sqrt.5 * (0, -1, 0))
    direction = (added + removed) / math.sqrt(2)
    r = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64) / math.sqrt(2)
    expected = r - direction * (direction @ r)
    assert expected.norm() < 1e-12  # here r lies along the token direction: nothing is left ...
    tokens = torch.tensor([[1.0, 0.0, 0.2], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    shifted = shift_residual(torch.tensor([1.0, 1.0, 0.5]), tokens, count=1)
    assert shifted.norm().item() == pytest.approx(1.0)
    scores = torch.nn.functional.normalize(tokens.double(), dim=1) @ torch.nn.functional.normalize(
        torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64), dim=0)
    top, bottom = scores.argmax(), scores.argmin()
    a = torch.nn.functional.normalize(tokens[top].double() * scores[top], dim=0)
    p = torch.nn.functional.normalize(tokens[bottom].double() * scores[bottom], dim=0)
    e = torch.nn.functional.normalize(a + p, dim=0)
    assert (shifted @ e).abs().item() < 1e-12  # ... and in general the result is orthogonal to it


def test_residual_round_trips_through_safetensors(tmp_path):
    residual = torch.nn.functional.normalize(torch.rand(16), dim=0)
    save_residual(tmp_path / "rave_residual.safetensors", residual, 0.25)
    loaded, threshold = load_residual(tmp_path)
    assert torch.equal(loaded, residual) and threshold == 0.25
