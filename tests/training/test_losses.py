"""Each CLIP-LIT loss against a value computed by hand on a tiny example."""

import math

import pytest
import torch

from cliplit.training.losses import (
    IDENTITY_WEIGHTS,
    clip_enhancement_loss,
    identity_loss,
    margin_ranking_loss,
    positive_scores,
    prompt_initialization_loss,
    prompt_refinement_loss,
)

LN3 = math.log(3.0)


def test_prompt_initialization_loss_is_two_way_cross_entropy():
    # softmax([0, ln 3]) = [1/4, 3/4]; softmax([ln 3, 0]) = [3/4, 1/4]
    logits = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    labels = torch.tensor([1, 1])
    expected = (-math.log(0.75) - math.log(0.25)) / 2
    assert prompt_initialization_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    assert prompt_initialization_loss(logits, torch.tensor([1, 0])).item() == pytest.approx(-math.log(0.75), rel=1e-6)


def test_clip_enhancement_loss_is_mean_negative_probability():
    logits = torch.tensor([[LN3, 0.0], [0.0, 0.0]])  # negative-prompt probabilities 3/4 and 1/2
    assert clip_enhancement_loss(logits).item() == pytest.approx(0.625, rel=1e-6)


def test_clip_enhancement_loss_has_gradient_towards_positive_prompt():
    logits = torch.tensor([[1.0, 0.0]], requires_grad=True)
    clip_enhancement_loss(logits).backward()
    assert logits.grad[0, 0] > 0 > logits.grad[0, 1]


def _features(offsets_per_image):
    """Five depths; image b's output differs from its input by offsets_per_image[b][l] everywhere at depth l."""
    shapes = [(4, 3), (4, 3), (2, 5), (2, 5), (6,)]
    inputs = [torch.randn(len(offsets_per_image), *s) for s in shapes]
    outputs = [
        x + torch.tensor([offs[depth] for offs in offsets_per_image]).view(-1, *([1] * len(shapes[depth])))
        for depth, x in enumerate(inputs)
    ]
    return outputs, inputs


def test_identity_loss_weights_depths_and_sums_images():
    torch.manual_seed(0)
    # image 0: squared offsets 1, 4, 0, 0, 4 -> 1 + 4 + 0 + 0 + 0.5 * 4 = 7
    # image 1: squared offsets 0, 0, 9, 1, 0 -> 9 + 1 = 10
    outputs, inputs = _features([[1.0, 2.0, 0.0, 0.0, 2.0], [0.0, 0.0, 3.0, -1.0, 0.0]])
    assert identity_loss(outputs, inputs).item() == pytest.approx(17.0, rel=1e-5)
    assert identity_loss(outputs, inputs, reduction="mean").item() == pytest.approx(8.5, rel=1e-5)
    assert identity_loss(outputs, inputs, weights=(1, 1, 1, 1, 1), reduction="mean").item() == pytest.approx(9.5, rel=1e-5)
    assert IDENTITY_WEIGHTS == (1.0, 1.0, 1.0, 1.0, 0.5)


def test_identity_loss_zero_for_identical_features_and_rejects_bad_weights():
    outputs, inputs = _features([[0.0] * 5])
    assert identity_loss(outputs, inputs).item() == 0.0
    with pytest.raises(ValueError, match="weights"):
        identity_loss(outputs, inputs, weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="reduction"):
        identity_loss(outputs, inputs, reduction="max")


def test_positive_scores_are_softmax_positive_column():
    logits = torch.tensor([[0.0, LN3]])
    assert positive_scores(logits).item() == pytest.approx(0.75, rel=1e-6)


def test_margin_ranking_loss_by_hand_and_matches_torch():
    lower = torch.tensor([0.2, 0.9])
    higher = torch.tensor([0.8, 0.5])
    # max(0, 0.2 - 0.8 + 0.1) = 0, max(0, 0.9 - 0.5 + 0.1) = 0.5 -> mean 0.25
    assert margin_ranking_loss(lower, higher, 0.1).item() == pytest.approx(0.25, rel=1e-6)
    reference = torch.nn.MarginRankingLoss(margin=0.1)(higher, lower, torch.ones(2))
    assert margin_ranking_loss(lower, higher, 0.1).item() == pytest.approx(reference.item(), rel=1e-6)


def test_prompt_refinement_loss_without_results_uses_margin_one():
    backlit, welllit = torch.tensor([0.3]), torch.tensor([0.6])
    # max(0, 0.3 - 0.6 + 1.0) = 0.7
    assert prompt_refinement_loss(backlit, welllit).item() == pytest.approx(0.7, rel=1e-6)


def test_prompt_refinement_loss_with_one_result():
    backlit, result, welllit = torch.tensor([0.1]), torch.tensor([0.5]), torch.tensor([0.6])
    # m(b, w, .9) = max(0, .1 - .6 + .9) = .4 ; m(b, r, .9) = max(0, .1 - .5 + .9) = .5 ; m(r, w, .2) = max(0, .5 - .6 + .2) = .1
    assert prompt_refinement_loss(backlit, welllit, [result]).item() == pytest.approx(1.0, rel=1e-6)


def test_prompt_refinement_loss_with_two_results_orders_older_below_newer():
    backlit, older, newer, welllit = (torch.tensor([v]) for v in (0.1, 0.5, 0.45, 0.6))
    # .4 + m(b, older, .9) = .5 + m(older, newer, .1) = max(0, .5 - .45 + .1) = .15 + m(newer, w, .1) = max(0, .45 - .6 + .1) = 0
    assert prompt_refinement_loss(backlit, welllit, [older, newer]).item() == pytest.approx(1.05, rel=1e-6)
    with pytest.raises(ValueError, match="at most two"):
        prompt_refinement_loss(backlit, welllit, [older, newer, newer])
