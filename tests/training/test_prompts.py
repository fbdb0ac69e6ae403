"""The learnable prompt pair and the CLIP guidance, with a tiny random CLIP written by the test."""

import math

import pytest
import torch

from cliplit.training.clip_guidance import CLIP_MEAN, CLIP_STD, CLIPGuidance, cosine_logits, identity_depths, preprocess_for_clip
from cliplit.training.prompts import NEGATIVE, POSITIVE, PromptPair, prompt_probabilities

PROMPT_LENGTH = 4


@pytest.fixture(scope="module")
def tiny_clip(tiny_clip_dir):
    from transformers import AutoTokenizer

    return CLIPGuidance.from_pretrained(tiny_clip_dir), AutoTokenizer.from_pretrained(tiny_clip_dir)


def test_prompts_initialized_from_x_token_embeddings(tiny_clip):
    guidance, tokenizer = tiny_clip
    pair = PromptPair.from_clip(guidance, tokenizer, PROMPT_LENGTH)
    x_id = tokenizer("X")["input_ids"][1]
    x_embedding = guidance.token_embeddings(torch.tensor(x_id))
    assert pair.embeddings.shape == (2, PROMPT_LENGTH, guidance.text_width)
    assert torch.equal(pair.embeddings[NEGATIVE, 0], x_embedding)
    assert torch.equal(pair.embeddings[NEGATIVE], pair.embeddings[POSITIVE])
    assert pair.embeddings.requires_grad


def test_prompt_encoding_matches_clip_text_tower_on_the_same_tokens(tiny_clip):
    guidance, tokenizer = tiny_clip
    pair = PromptPair.from_clip(guidance, tokenizer, PROMPT_LENGTH)
    ids = torch.tensor([tokenizer(" ".join(["X"] * PROMPT_LENGTH))["input_ids"]])
    reference = guidance.clip.get_text_features(input_ids=ids).pooler_output[0]
    encoded = pair.text_embeddings(guidance)
    assert encoded.shape == (2, guidance.clip.config.projection_dim)
    torch.testing.assert_close(encoded[0], reference, atol=1e-5, rtol=1e-5)


def test_prompt_encoding_is_causal_and_differentiable(tiny_clip):
    guidance, tokenizer = tiny_clip
    pair = PromptPair.from_clip(guidance, tokenizer, PROMPT_LENGTH)
    with torch.no_grad():
        pair.embeddings[POSITIVE] += 0.5 * torch.randn_like(pair.embeddings[POSITIVE])
    encoded = pair.text_embeddings(guidance)
    assert not torch.allclose(encoded[0], encoded[1])
    encoded[POSITIVE].sum().backward()
    assert pair.embeddings.grad[POSITIVE].abs().sum() > 0
    assert pair.embeddings.grad[NEGATIVE].abs().sum() == 0


def test_scores_are_softmax_of_100_cosine(tiny_clip):
    guidance, tokenizer = tiny_clip
    pair = PromptPair.from_clip(guidance, tokenizer, PROMPT_LENGTH)
    torch.manual_seed(0)
    with torch.no_grad():
        pair.embeddings.add_(0.3 * torch.randn_like(pair.embeddings))
    image_embeds = torch.randn(3, guidance.clip.config.projection_dim)
    logits = pair(image_embeds, guidance)
    text = pair.text_embeddings(guidance)
    for b in range(3):
        for k in range(2):
            cosine = torch.dot(image_embeds[b], text[k]) / (image_embeds[b].norm() * text[k].norm())
            assert logits[b, k].item() == pytest.approx(100 * cosine.item(), rel=1e-4, abs=1e-4)
    probabilities = prompt_probabilities(logits)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(3))


def test_save_load_roundtrip(tiny_clip, tmp_path):
    guidance, tokenizer = tiny_clip
    pair = PromptPair.from_clip(guidance, tokenizer, PROMPT_LENGTH)
    with torch.no_grad():
        pair.embeddings.add_(torch.randn_like(pair.embeddings))
    pair.save(tmp_path / "pair.safetensors")
    loaded = PromptPair.load(tmp_path / "pair.safetensors")
    assert torch.equal(loaded.embeddings, pair.embeddings)
    assert (loaded.sot_token_id, loaded.eot_token_id) == (pair.sot_token_id, pair.eot_token_id)
    torch.testing.assert_close(loaded.text_embeddings(guidance), pair.text_embeddings(guidance))


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.safetensors"):
        PromptPair.load(bad)
    with pytest.raises(OSError, match="missing"):
        PromptPair.load(tmp_path / "missing.safetensors")


def test_authors_prompt_checkpoint_keeps_learned_tokens(tmp_path, tiny_clip):
    guidance, _ = tiny_clip
    full = torch.randn(2, 77, guidance.text_width)
    torch.save({"module.embedding_prompt": full}, tmp_path / "init_prompt_pair.pth")
    pair = PromptPair.load_authors_pth(tmp_path / "init_prompt_pair.pth", PROMPT_LENGTH, 0, 1)
    assert torch.equal(pair.embeddings, full[:, 1 : 1 + PROMPT_LENGTH])
    torch.save({"something": full}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="other.pth"):
        PromptPair.load_authors_pth(tmp_path / "other.pth", PROMPT_LENGTH, 0, 1)


def test_identity_depths_evenly_spaced():
    assert identity_depths(12) == (0, 3, 6, 9, 12)
    assert identity_depths(24) == (0, 6, 12, 18, 24)
    with pytest.raises(ValueError):
        identity_depths(2)


def test_preprocessing_resizes_normalizes_and_passes_gradients():
    images = torch.full((2, 3, 40, 60), 0.5, requires_grad=True)
    mean, std = torch.tensor(CLIP_MEAN), torch.tensor(CLIP_STD)
    pixels = preprocess_for_clip(images, mean, std, 224)
    assert pixels.shape == (2, 3, 224, 224)
    for c in range(3):
        assert pixels[0, c].mean().item() == pytest.approx((0.5 - CLIP_MEAN[c]) / CLIP_STD[c], rel=1e-5)
    pixels.sum().backward()
    assert images.grad.abs().sum() > 0


def test_image_features_match_clip_and_expose_five_depths(tiny_clip):
    guidance, _ = tiny_clip
    images = torch.rand(2, 3, 224, 224)
    embeds, hidden = guidance.image_features(images, with_hidden_states=True)
    pixels = (images - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    reference = guidance.clip.get_image_features(pixel_values=pixels).pooler_output
    torch.testing.assert_close(embeds, reference, atol=1e-5, rtol=1e-5)
    assert len(hidden) == 5
    layers = guidance.clip.config.vision_config.num_hidden_layers
    full = guidance.clip.vision_model(pixel_values=pixels, output_hidden_states=True).hidden_states
    torch.testing.assert_close(hidden[-1], full[layers])
    torch.testing.assert_close(hidden[0], full[0])


def test_cosine_logits_scale():
    image = torch.tensor([[1.0, 0.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    torch.testing.assert_close(cosine_logits(image, text), torch.tensor([[100.0, 0.0]]))
    assert math.isclose(cosine_logits(image, text, scale=1.0)[0, 0].item(), 1.0)
