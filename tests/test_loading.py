"""What `--model` / `load_model` accept, and the default model's download-once cache."""

from __future__ import annotations

import shutil
import urllib.error

import pytest
import torch

from cliplit import CLIPLITModel, load_model
from cliplit.errors import ModelNotFoundError
from cliplit.loading import CACHE_ENV_VAR, DEFAULT_CHECKPOINT_SHA256, MODEL_ENV_VAR, default_model_dir, sha256_of

from conftest import ENHANCEMENT_CHECKPOINT


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_published_checkpoint_matches_the_default_models_checksum():
    assert sha256_of(ENHANCEMENT_CHECKPOINT) == DEFAULT_CHECKPOINT_SHA256


def test_load_model_accepts_pth_and_folder(converted_model_dir, reference_model):
    from_pth = load_model(ENHANCEMENT_CHECKPOINT)
    from_folder = load_model(converted_model_dir)
    assert isinstance(from_pth, CLIPLITModel) and not from_pth.training
    assert same_weights(from_pth, reference_model) and same_weights(from_folder, reference_model)


def test_environment_variable_names_the_model(monkeypatch, reference_model):
    monkeypatch.setenv(MODEL_ENV_VAR, str(ENHANCEMENT_CHECKPOINT))
    assert same_weights(load_model(None), reference_model)


def test_default_model_is_downloaded_once_checked_and_converted(monkeypatch, tmp_path, reference_model):
    """The download is replaced by a copy of the published file; everything after it is real."""
    downloads = []

    def fake_download(url, destination, progress=True):
        downloads.append(url)
        shutil.copyfile(ENHANCEMENT_CHECKPOINT, destination)

    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert same_weights(load_model(), reference_model)
    assert same_weights(load_model(), reference_model)
    assert len(downloads) == 1 and downloads[0].endswith("pretrained_models/enhancement_model.pth")
    assert (default_model_dir() / "model.safetensors").is_file()


def test_default_model_rejects_a_corrupted_download(monkeypatch, tmp_path):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda url, dst, progress=True: open(dst, "wb").write(b"x"))
    with pytest.raises(ModelNotFoundError, match="sha256"):
        load_model()
    assert not any((tmp_path / "cache").glob("*.pth"))


def test_offline_default_model_error_says_how_to_use_a_local_file(monkeypatch, tmp_path):
    def offline(url, destination, progress=True):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ModelNotFoundError) as error:
        load_model()
    message = str(error.value)
    assert "--model" in message and MODEL_ENV_VAR in message and "\n" not in message


def test_unknown_hub_id_offline_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as error:
        load_model("nobody/no-such-model")
    assert "nobody/no-such-model" in str(error.value) and "\n" not in str(error.value)
