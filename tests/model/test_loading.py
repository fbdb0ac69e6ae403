"""What `--model` / `load_model` / `load_network` accept: published models by short name (downloaded
once from a local file server that stands in for the authors' repositories, checksum-verified,
converted, cached), folders, authors' `.pth` files, Hub ids, and paths that name nothing."""

from __future__ import annotations

import dataclasses
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLIPLIT_REFERENCE, ENHANCEMENT_CHECKPOINT, RAVE_REFERENCE, SHARED_REFERENCE, smallest_reference_image
from helpers import run_cli

from cliplit.errors import ModelNotFoundError
from cliplit.model import catalog
from cliplit.model.loading import CACHE_ENV_VAR, MODEL_ENV_VAR, load_model, load_network, published_folder, sha256_of
from cliplit.model.modeling_cliplit import CLIPLITModel
from cliplit.model.network import CLIPLITNetwork

pytestmark = pytest.mark.reference
RAVE_NAMES = [name for name, model in catalog.PUBLISHED_MODELS.items() if model.repository == catalog.RAVE_REPOSITORY]


def same_weights(first: torch.nn.Module, second: torch.nn.Module) -> bool:
    return all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


class ReferenceFiles(http.server.SimpleHTTPRequestHandler):
    """Serves `<anything>/<file>.pth` from ../shared/reference/{clip-lit,rave}, logging each request."""

    requests: list[str] = []

    def translate_path(self, path):
        name = Path(path.split("?")[0]).name
        self.requests.append(name)
        for folder in (CLIPLIT_REFERENCE, RAVE_REFERENCE):
            if (folder / name).is_file():
                return str(folder / name)
        return str(SHARED_REFERENCE / "missing")

    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(monkeypatch, tmp_path):
    """The published models' URLs pointed at a local server; a fresh cache; returns the request log."""
    ReferenceFiles.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ReferenceFiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    patched = {name: dataclasses.replace(model, repository=f"{base}/{name}") for name, model in catalog.PUBLISHED_MODELS.items()}
    monkeypatch.setattr(catalog, "PUBLISHED_MODELS", patched)
    monkeypatch.setattr("cliplit.model.loading.PUBLISHED_MODELS", patched)
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path / "cache"))
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield ReferenceFiles.requests
    server.shutdown()
    server.server_close()


def test_every_published_checksum_is_that_of_the_reference_file():
    """The catalogue's sha256 values (copied from the authors' files) match the files in ../shared."""
    for model in catalog.PUBLISHED_MODELS.values():
        folder = CLIPLIT_REFERENCE if model.repository == catalog.CLIPLIT_REPOSITORY else RAVE_REFERENCE
        assert sha256_of(folder / model.filename) == model.sha256, model.name
    assert set(RAVE_NAMES) == {"rave-unpaired", "rave-paired", "rave-unpaired-shifted", "clip-lit-paired",
                               "clip-lit-unpaired", "clip-lit-latent-paired", "clip-lit-latent-unpaired"}


def test_the_default_is_clip_lit_downloaded_once_checked_converted_and_cached(file_server, reference_model):
    assert same_weights(load_model(), reference_model)
    assert same_weights(load_network(), reference_model)
    assert same_weights(load_model("clip-lit"), reference_model)
    assert file_server == ["enhancement_model.pth"]  # one download for all three loads
    assert (published_folder(catalog.PUBLISHED_MODELS["clip-lit"]) / "model.safetensors").is_file()
    assert not list(Path(published_folder(catalog.PUBLISHED_MODELS["clip-lit"])).parent.rglob("*.partial*"))


@pytest.mark.parametrize("name", RAVE_NAMES)
def test_each_rave_checkpoint_downloads_converts_and_enhances(file_server, name):
    from PIL import Image

    import cliplit
    from cliplit.model.conversion import network_from_author_checkpoint

    network = load_network(name)
    assert file_server == [catalog.PUBLISHED_MODELS[name].filename]
    assert same_weights(network, network_from_author_checkpoint(RAVE_REFERENCE / catalog.PUBLISHED_MODELS[name].filename))
    with Image.open(smallest_reference_image()) as photo:
        photo = photo.convert("RGB").resize((96, 128))
    enhanced = np.asarray(cliplit.enhance(network, photo)).astype(np.float64)
    original = np.asarray(photo).astype(np.float64)
    dark = original.mean(axis=2) < np.percentile(original.mean(axis=2), 25)
    assert enhanced[dark].mean() > original[dark].mean() + 10  # backlit shadows brighten by >10 levels
    assert isinstance(load_model(name), CLIPLITModel) and file_server == [catalog.PUBLISHED_MODELS[name].filename]


def test_a_wrong_checksum_is_refused_and_nothing_is_kept(file_server, monkeypatch, tmp_path):
    model = catalog.PUBLISHED_MODELS["rave-paired"]
    monkeypatch.setitem(catalog.PUBLISHED_MODELS, "rave-paired", dataclasses.replace(model, sha256="0" * 64))
    with pytest.raises(ModelNotFoundError, match="does not match its published sha256"):
        load_network("rave-paired")
    cache = tmp_path / "cache"
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_offline_nothing_touches_the_network(file_server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as error:
        load_network("rave-unpaired")
    assert file_server == [] and "HF_HUB_OFFLINE" in str(error.value) and "\n" not in str(error.value)


def test_models_command_lists_every_name_with_source_and_cache_state(file_server, tmp_path):
    load_network("rave-unpaired")
    result = run_cli("models", env={CACHE_ENV_VAR: str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    for name, model in catalog.PUBLISHED_MODELS.items():
        assert name in rows and model.guidance in rows[name]
        assert model.filename in result.stdout
    assert rows["rave-unpaired"].split()[1] == "yes" and rows["rave-paired"].split()[1] == "no"
    assert rows["clip-lit"].split()[1] == "(default)"


def test_pipeline_without_a_model_uses_the_default(file_server, reference_model):
    from PIL import Image
    from transformers import pipeline

    import cliplit

    enhancer = pipeline("backlit-enhancement", device="cpu")
    assert same_weights(enhancer.model, reference_model)
    with Image.open(smallest_reference_image()) as photo:
        photo = photo.convert("RGB").resize((64, 48))
    assert np.array_equal(np.asarray(enhancer(photo)), np.asarray(cliplit.enhance(reference_model, photo)))


def test_load_model_accepts_pth_and_folder(converted_model_dir, reference_model):
    from_pth = load_model(ENHANCEMENT_CHECKPOINT)
    from_folder = load_model(converted_model_dir)
    assert isinstance(from_pth, CLIPLITModel) and not from_pth.training
    assert same_weights(from_pth, reference_model) and same_weights(from_folder, reference_model)
    network = load_network(converted_model_dir)
    assert isinstance(network, CLIPLITNetwork) and same_weights(network, reference_model)


def test_environment_variable_names_the_model(monkeypatch, reference_model):
    monkeypatch.setenv(MODEL_ENV_VAR, str(ENHANCEMENT_CHECKPOINT))
    assert same_weights(load_model(None), reference_model)


@pytest.mark.parametrize("spec", ["./no/such/folder", "/no/such/model.pth", "missing.pth", "no-such-name",
                                  "a/b/c", "~/nothing-here"])
def test_a_path_that_names_nothing_fails_at_once(spec, file_server):
    with pytest.raises(ModelNotFoundError, match="no such folder or file") as error:
        load_network(spec)
    assert file_server == []  # nothing was fetched: neither a download nor a Hub lookup
    assert "\n" not in str(error.value)


def test_unknown_hub_id_offline_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError) as error:
        load_model("nobody/no-such-model")
    assert "nobody/no-such-model" in str(error.value) and "\n" not in str(error.value)
