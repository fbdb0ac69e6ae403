"""`EngineSettings`: one frozen object, checked once when built, and `EnhancerCache`, one engine per settings."""

from __future__ import annotations

import threading

import pytest
import torch

from cliplit.engine.enhancer import Enhancer, EnhancerCache
from cliplit.engine.settings import EngineSettings, engine_settings
from cliplit.errors import SettingsError
from cliplit.model.network import CLIPLITNetwork


@pytest.mark.parametrize("changes, message", [
    ({"mode": "turbo"}, "mode must be one of exact, fast"),
    ({"tile_size": 8}, "tile size must be 0"),
    ({"tile_size": 64.0}, "tile size must be 0"),
    ({"tile_size": True}, "tile size must be 0"),
    ({"fast_downscale": 0.5}, "fast-mode downscale"),
    ({"fast_downscale": float("nan")}, "fast-mode downscale"),
    ({"strength": -1}, "strength"),
    ({"strength": float("inf")}, "strength"),
    ({"precision": "fp8"}, "precision must be one of fp32, fp16, bf16"),
    ({"precision": torch.float64}, "precision must be float32, float16 or bfloat16"),
    ({"device": "tpu"}, "not a device"),
    ({"device": "cuda:x"}, "not a device"),
    ({"denoise": "loud"}, "denoise must be off, auto or a noise level"),
    ({"denoise": -2}, "denoise must be off, auto or a noise level"),
    ({"compile": "yes"}, "compile must be True or False"),
    ({"keep_workspace": 1}, "keep_workspace must be True or False"),
])
def test_a_bad_setting_is_refused_in_one_line_when_the_settings_are_built(changes, message):
    with pytest.raises(SettingsError, match=message) as refused:
        EngineSettings(**changes)
    assert "\n" not in str(refused.value)
    with pytest.raises(SettingsError, match=message):  # the same check through every way of building them
        EngineSettings().replace(**changes)


def test_an_unknown_setting_is_named_with_the_known_ones():
    with pytest.raises(SettingsError, match="unknown engine setting 'tiles' .*the settings are mode, strength, tile_size"):
        engine_settings(tiles=4)
    with pytest.raises(SettingsError, match="settings must be an EngineSettings"):
        engine_settings({"mode": "fast"})


def test_values_are_kept_in_one_spelling_so_equal_settings_are_equal():
    assert EngineSettings(precision=torch.bfloat16) == EngineSettings(precision="bf16")
    assert EngineSettings(precision=None).precision == "fp32"
    assert EngineSettings(device=torch.device("cpu")) == EngineSettings(device="cpu")
    assert EngineSettings(device=torch.device("cuda", 1)).device == "cuda:1"
    assert EngineSettings(denoise="2.5").denoise == 2.5 and EngineSettings(denoise=None).denoise == "off"
    assert EngineSettings(fast_downscale=4).fast_downscale == 4.0
    assert len({EngineSettings(mode="fast"), EngineSettings().replace(mode="fast"), engine_settings(mode="fast")}) == 1
    settings = EngineSettings()
    with pytest.raises(AttributeError):
        settings.mode = "fast"  # frozen: a cache key cannot change under its engine


def test_an_enhancer_takes_the_settings_or_their_fields():
    network = CLIPLITNetwork()
    settings = EngineSettings(mode="fast", strength=0.7, denoise="auto", keep_workspace=False)
    assert Enhancer(network, settings).settings == settings
    assert Enhancer(network, mode="fast", strength=0.7, denoise="auto", keep_workspace=False).settings == settings
    assert Enhancer(network, settings, strength=0.5).settings == settings.replace(strength=0.5)
    assert Enhancer(network, settings).strength == 0.7 and Enhancer(network).strength == network.config.default_strength


def test_the_cache_builds_one_engine_per_settings_and_keeps_the_most_recent():
    network = CLIPLITNetwork()
    cache = EnhancerCache(network, size=2)
    exact = cache.get(EngineSettings())
    assert cache.get() is exact and cache.get(EngineSettings(precision=torch.float32)) is exact
    fast = cache.get(mode="fast")
    assert fast is not exact and fast.settings.mode == "fast"
    assert cache.get(EngineSettings()) is exact  # now the most recently used
    cache.get(mode="fast", denoise="auto")  # a third: the least recently used (fast) is dropped
    assert cache.get(mode="fast") is not fast
    with pytest.raises(SettingsError, match="mode must be"):
        cache.get(mode="slow")


def test_the_cache_builds_an_engine_once_when_threads_ask_together():
    cache = EnhancerCache(CLIPLITNetwork())
    engines, barrier = [], threading.Barrier(4)

    def ask():
        barrier.wait()
        engines.append(cache.get(mode="fast"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(engine) for engine in engines}) == 1


def test_the_pipeline_takes_the_settings_and_its_denoise_shortcut(model_dir):
    from transformers import pipeline

    import cliplit  # noqa: F401 - registers the task

    quick = pipeline("backlit-enhancement", model=str(model_dir), settings=EngineSettings(mode="fast", strength=0.5))
    assert quick.enhancer.settings == EngineSettings(mode="fast", strength=0.5)
    cleaner = pipeline("backlit-enhancement", model=str(model_dir), settings=EngineSettings(mode="fast"), denoise="auto")
    assert cleaner.enhancer.settings == EngineSettings(mode="fast", denoise="auto")
    assert pipeline("backlit-enhancement", model=str(model_dir)).enhancer.settings == EngineSettings()
