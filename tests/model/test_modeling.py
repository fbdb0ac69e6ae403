"""The model in transformers conventions: config, outputs, strength, floor, save/load, Auto classes, Hub cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import random_pixels as random_image
from PIL import Image

import cliplit
from cliplit import CLIPLITConfig, CLIPLITModel
from cliplit.errors import CheckpointError
from cliplit.model.architecture import ArchitectureConfig
from cliplit.model.network import CLIPLITNetwork, as_network

PUBLISHED_PARAMETER_COUNT = 278_790


def test_published_architecture_has_published_parameter_count():
    config = CLIPLITConfig()
    assert (config.hidden_size, config.expanded_hidden_size, config.pyramid_bins) == (32, 64, [1, 2, 3, 6])
    assert config.padding_mode == "reflect" and config.illumination_channels == 1
    assert CLIPLITModel(config).num_parameters() == PUBLISHED_PARAMETER_COUNT


@pytest.mark.parametrize(("values", "message"), [
    ({"padding_mode": "mirror"}, "padding_mode"), ({"illumination_floor": 0}, "illumination_floor"),
    ({"hidden_size": -1}, "hidden_size"), ({"pyramid_bins": []}, "pyramid_bins"), ({"pyramid_bins": [1, 0]}, "pyramid_bins"),
    ({"default_strength": float("nan")}, "default_strength"), ({"negative_slope": float("inf")}, "negative_slope"),
])
def test_config_rejects_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        CLIPLITConfig(**values)
    with pytest.raises(ValueError, match=message):
        ArchitectureConfig(**values)


def test_a_config_of_another_model_type_or_with_bad_values_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    with pytest.raises(CheckpointError, match="model_type is 'bert'"):
        ArchitectureConfig.from_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "cliplit", "hidden_size": -1}))
    with pytest.raises(CheckpointError, match="hidden_size"):
        ArchitectureConfig.from_folder(tmp_path)


def test_the_transformers_model_and_the_plain_network_are_one_network(reference_model):
    network = as_network(reference_model)
    assert isinstance(network, CLIPLITNetwork)
    assert list(network.state_dict()) == list(reference_model.state_dict())
    assert network.config == reference_model.config.to_architecture()
    pixel_values = random_image()
    with torch.no_grad():
        assert torch.equal(network(pixel_values), reference_model(pixel_values).illumination)


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_receptive_radii_are_counted_from_the_network(part):
    """An output pixel depends on inputs at the radius and on none beyond it (gradients, zero padding)."""
    network = CLIPLITNetwork(ArchitectureConfig(padding_mode="zeros")).eval()
    network.start_from_identity()  # keep the map above its floor, where gradients flow
    radius = network.encoder_radius if part == "encoder" else network.decoder_radius
    channels = 3 if part == "encoder" else network.config.hidden_size
    size, centre = 2 * radius + 9, radius + 4
    inputs = random_image(size, size)[:, :1].repeat(1, channels, 1, 1).requires_grad_()
    if part == "encoder":
        outputs = network.encode(inputs)
    else:
        outputs = network.decode(network.pyramid_pooling.fuse(inputs, [torch.zeros(1, 8, size, size)] * 4))
    outputs[..., centre, centre].sum().backward()
    influence = inputs.grad.abs().sum(dim=1)[0, centre]
    assert influence[centre + radius] > 0 and influence[centre - radius] > 0
    assert influence[centre + radius + 1] == 0 and influence[centre - radius - 1] == 0


def test_forward_returns_reconstruction_and_illumination(reference_model):
    pixel_values = random_image()
    with torch.no_grad():
        output = reference_model(pixel_values)
    assert output.reconstruction.shape == pixel_values.shape
    assert output.illumination.shape == (1, 1, 37, 53)
    expected = (pixel_values / output.illumination).clamp(0, 1)
    torch.testing.assert_close(output.reconstruction, expected)
    reconstruction, illumination = reference_model(pixel_values, return_dict=False)
    torch.testing.assert_close(reconstruction, output.reconstruction)


def test_illumination_floor_prevents_nan_and_inf():
    model = CLIPLITModel(CLIPLITConfig()).eval()
    with torch.no_grad():
        model.illumination_head.bias.fill_(-10.0)  # the head's ReLU output is 0 everywhere
        output = model(torch.cat([random_image(), torch.zeros(1, 3, 37, 53)]))
    assert torch.all(output.illumination == model.config.illumination_floor)
    assert torch.isfinite(output.reconstruction).all()
    assert torch.all(output.reconstruction[1] == 0)  # black stays black instead of 0/0 = NaN


def test_strength_zero_is_identity_and_one_is_published(reference_model):
    pixel_values = random_image()
    with torch.no_grad():
        identity = reference_model(pixel_values, strength=0.0).reconstruction
        published = reference_model(pixel_values, strength=1.0).reconstruction
        half = reference_model(pixel_values, strength=0.5).reconstruction
    torch.testing.assert_close(identity, pixel_values)
    assert not torch.allclose(published, pixel_values)
    # A partial strength lies between the input and the full enhancement (L <= 1 brightens).
    assert torch.all(half >= torch.minimum(identity, published) - 1e-6)
    assert torch.all(half <= torch.maximum(identity, published) + 1e-6)
    with pytest.raises(ValueError, match="strength"):
        reference_model(pixel_values, strength=-1)


def test_enhance_strength_from_config(reference_model, tmp_path):
    image = Image.fromarray((np.random.default_rng(0).random((20, 30, 3)) * 255).astype(np.uint8))
    unchanged = CLIPLITModel(CLIPLITConfig(default_strength=0.0))
    unchanged.load_state_dict(reference_model.state_dict())
    assert np.array_equal(np.asarray(cliplit.enhance(unchanged, image)), np.asarray(image))
    assert np.array_equal(np.asarray(cliplit.enhance(unchanged, image, strength=1.0)),
                          np.asarray(cliplit.enhance(reference_model, image)))


def test_save_pretrained_then_load_model_is_bit_identical(reference_model, tmp_path):
    """`load_model` (and the engine, which copies the weights) own aligned memory: bit-identical outputs."""
    from cliplit import CLIPLITImageProcessor

    reference_model.save_pretrained(tmp_path)
    CLIPLITImageProcessor().save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "cliplit"
    reloaded = cliplit.load_model(tmp_path)
    assert isinstance(reloaded, CLIPLITModel) and not reloaded.training
    pixel_values = random_image(64, 48, seed=3)
    with torch.no_grad():
        before = reference_model(pixel_values)
        after = reloaded(pixel_values)
    assert torch.equal(before.reconstruction, after.reconstruction)
    assert torch.equal(before.illumination, after.illumination)
    image = (pixel_values[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    from_folder = cliplit.Enhancer(CLIPLITModel.from_pretrained(tmp_path)).enhance(image, output_type="pt")
    assert torch.equal(from_folder, cliplit.Enhancer(reference_model).enhance(image, output_type="pt"))


def test_auto_classes_load_a_saved_folder(converted_model_dir):
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageToImage

    assert isinstance(AutoConfig.from_pretrained(converted_model_dir), CLIPLITConfig)
    assert isinstance(AutoModelForImageToImage.from_pretrained(converted_model_dir), CLIPLITModel)
    assert isinstance(AutoModel.from_pretrained(converted_model_dir), CLIPLITModel)
    assert isinstance(AutoImageProcessor.from_pretrained(converted_model_dir), cliplit.CLIPLITImageProcessor)


def build_hub_cache(cache: os.PathLike, repo_id: str, folder) -> None:
    """Lay `folder` out as huggingface_hub's cache does for a downloaded model repo."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    os.makedirs(os.path.join(repo, "refs"))
    with open(os.path.join(repo, "refs", "main"), "w") as ref:
        ref.write(commit)
    shutil.copytree(folder, os.path.join(repo, "snapshots", commit))


@pytest.mark.slow  # a new process: the Hub client reads HF_HUB_OFFLINE and HF_HUB_CACHE when imported
def test_from_pretrained_repo_id_resolves_offline_from_hub_cache(converted_model_dir, reference_model, tmp_path):
    build_hub_cache(tmp_path / "hub", "our-org/clip-lit", converted_model_dir)
    script = (
        "import sys, torch\n"
        "from transformers import pipeline\n"
        "from cliplit import CLIPLITModel\n"
        "model = CLIPLITModel.from_pretrained('our-org/clip-lit').eval()\n"
        "torch.save(model.state_dict(), sys.argv[1])\n"
        "enhancer = pipeline('backlit-enhancement', model='our-org/clip-lit')\n"
        "print(type(enhancer).__name__)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "sd.pt")], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "BacklitEnhancementPipeline" in result.stdout
    loaded = torch.load(tmp_path / "sd.pt", weights_only=True)
    for key, value in reference_model.state_dict().items():
        assert torch.equal(loaded[key], value), key


def test_push_to_hub_uploads_the_saved_files(reference_model, monkeypatch):
    """push_to_hub goes through transformers' upload machinery with our safetensors files."""
    import huggingface_hub

    uploaded = {}

    def fake_create_commit(self, repo_id, operations, **kwargs):
        uploaded["repo_id"] = repo_id
        uploaded["files"] = sorted(op.path_in_repo for op in operations)
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{repo_id}/commit/0", commit_message="", commit_description="",
            oid="0", pr_url=None,
        )

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"))
    monkeypatch.setattr(huggingface_hub.HfApi, "create_commit", fake_create_commit)

    def new_repository_has_no_card(cls, repo_id, **kwargs):  # what the Hub answers for a new repository, without asking it
        raise huggingface_hub.errors.EntryNotFoundError(f"{repo_id} has no README.md")

    monkeypatch.setattr(huggingface_hub.ModelCard, "load", classmethod(new_repository_has_no_card))
    reference_model.push_to_hub("our-org/clip-lit", token="hf_dummy")
    assert uploaded["repo_id"] == "our-org/clip-lit"
    assert {"model.safetensors", "config.json", "README.md"} <= set(uploaded["files"])  # the card transformers writes too


def authors_noreflect_illumination(state: dict, pixels: torch.Tensor, slope: float = 0.2) -> torch.Tensor:
    """
    An independent plain evaluation of the authors' `UNet_emb_oneBranch_symmetry_noreflect`
    (`model_small.py`): zero padding on the four outer 3x3 convolutions (cond1, condx, condy,
    cond_add1) and the pyramid fuse, reflection padding in the residual blocks, ReLU head.
    `state` holds our key names; written with functional calls only.
    """
    import torch.nn.functional as F

    def outer(x, name):
        return F.conv2d(x, state[f"{name}.weight"], state.get(f"{name}.bias"), padding=1)

    def residual(x, name):
        inner = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), state[f"{name}.conv1.weight"])
        inner = F.leaky_relu(inner, slope)
        return F.leaky_relu(F.conv2d(F.pad(inner, (1, 1, 1, 1), mode="reflect"), state[f"{name}.conv2.weight"]) + x, slope)

    x = F.leaky_relu(outer(pixels, "stem"), slope)
    x = residual(residual(x, "encoder_blocks.0"), "encoder_blocks.1")
    branches = [x]
    for index, bins in enumerate((1, 2, 3, 6)):
        pooled = F.conv2d(F.adaptive_avg_pool2d(x, bins), state[f"pyramid_pooling.stages.{index}.conv.weight"])
        pooled = F.prelu(pooled, state[f"pyramid_pooling.stages.{index}.activation.weight"])
        branches.append(F.interpolate(pooled, x.shape[-2:], mode="bilinear", align_corners=True))
    x = F.conv2d(torch.cat(branches, 1), state["pyramid_pooling.fuse_conv.weight"], padding=1)
    x = F.prelu(x, state["pyramid_pooling.fuse_activation.weight"])
    x = residual(residual(outer(x, "expand"), "middle_blocks.0"), "middle_blocks.1")
    x = residual(residual(outer(x, "reduce"), "decoder_blocks.0"), "decoder_blocks.1")
    return F.relu(outer(x, "illumination_head"))


def test_the_noreflect_configuration_computes_the_authors_noreflect_network(reference_model):
    from cliplit.model.architecture import NOREFLECT_PADDING, PADDING_VARIANTS

    padding_mode, outer_padding_mode = NOREFLECT_PADDING
    noreflect = CLIPLITModel(CLIPLITConfig(padding_mode=padding_mode, outer_padding_mode=outer_padding_mode)).eval()
    noreflect.load_state_dict(reference_model.state_dict())
    pixels = random_image(45, 38, seed=4)
    with torch.no_grad():
        ours = noreflect.estimate_illumination(pixels)
        authors = authors_noreflect_illumination(reference_model.state_dict(), pixels)
        published = reference_model.estimate_illumination(pixels)
    torch.testing.assert_close(ours, authors.clamp_min(noreflect.config.illumination_floor), rtol=1e-5, atol=1e-6)
    assert (ours - published).abs()[..., 0, :].max() > 1e-3  # the variants differ (at the border most)
    assert PADDING_VARIANTS["noreflect"] == NOREFLECT_PADDING


def test_configurations_saved_before_outer_padding_still_load_as_they_computed(reference_model, tmp_path):
    reference_model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("outer_padding_mode", None)  # as written before the field existed
    config["padding_mode"] = "zeros"
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = cliplit.load_model(tmp_path)
    assert loaded.config.outer_padding_mode is None
    assert {m.padding_mode for m in loaded.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)} == {"zeros"}
