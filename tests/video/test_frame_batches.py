"""Frames enhanced in batches (`Enhancer.enhance_frames`, `VideoEnhancer(batch_size=)`): one pass on the
eager path a GPU takes, the same pixels as one frame at a time; one by one where batching does not apply."""

from __future__ import annotations

import numpy as np
import pytest
from video_clips import read_video_frames, stream_packets, write_test_clip

from cliplit.errors import SettingsError
from cliplit.evaluation.metrics import psnr
from cliplit.imaging.codec import DecodedImage, encode_array

pytestmark = pytest.mark.reference

BATCH_TOLERANCE = 1e-5  # batched convolutions may sum in another order: float32 rounding, far below a level
MIN_ENCODED_PSNR_DB = 40.0  # two x264 encodes of (nearly) the same frames, at CRF 18


def eager_enhancer(model, **settings):
    """An `Enhancer` on the eager path, as on a GPU (the fused CPU pass needs channels-last memory)."""
    from cliplit.engine.enhancer import Enhancer
    from cliplit.engine.runtime import Runtime

    enhancer = Enhancer(model, **settings)
    enhancer.runtime = Runtime(model, channels_last=False)
    return enhancer


def frames(count: int, seed: int = 0) -> list[DecodedImage]:
    rng = np.random.default_rng(seed)
    base = np.linspace(0.05, 0.9, 40, dtype=np.float32)[None, :, None] * np.ones((30, 1, 3), np.float32)
    return [DecodedImage(np.clip(base + rng.normal(0, 0.03, base.shape).astype(np.float32), 0, 1)) for _ in range(count)]


def test_a_batch_is_one_pass_with_each_frames_own_result(reference_model):
    enhancer = eager_enhancer(reference_model, denoise="auto")
    images = frames(3)
    assert enhancer._batches(images)
    batched = enhancer.enhance_frames(images, strength=0.8)
    for image, result in zip(images, batched):
        single = enhancer.enhance_decoded(image, strength=0.8)[0]
        assert np.abs(result.pixels - single.pixels).max() < BATCH_TOLERANCE
    fused = eager_enhancer(reference_model)
    fused.runtime = type(fused.runtime)(reference_model)  # the fused CPU pass: one frame at a time
    mixed = [*frames(1), DecodedImage(np.full((20, 24, 3), 0.2, np.float32))]
    for engine, batch in ((fused, images), (enhancer, mixed), (eager_enhancer(reference_model, mode="fast"), images)):
        assert not engine._batches(batch)
        assert all(np.array_equal(a.pixels, engine.enhance_decoded(b)[0].pixels) for a, b in zip(engine.enhance_frames(batch), batch))


def test_video_in_batches_equals_frame_by_frame(tmp_path, reference_model):
    from cliplit.video.enhancer import VideoEnhancer

    clip = write_test_clip(tmp_path / "clip.mp4", frames=7, vfr=True)  # 7: two batches of 3 and a last one of 1
    enhancer = eager_enhancer(reference_model)
    assert VideoEnhancer(enhancer).options.batch_size == 1  # the default on a CPU
    handed_to_encoder: dict[int, list[np.ndarray]] = {1: [], 3: []}
    enhance_frames = enhancer.enhance_frames
    for batch_size, frames_out in handed_to_encoder.items():
        def recorded(images, strength=None, frames_out=frames_out):
            results = enhance_frames(images, strength)
            frames_out.extend(encode_array(result) for result in results)
            return results

        enhancer.enhance_frames = recorded
        assert VideoEnhancer(enhancer, batch_size=batch_size).enhance_file(clip, tmp_path / f"batch{batch_size}.mp4") == 7
    assert [len(frames_out) for frames_out in handed_to_encoder.values()] == [7, 7]
    # the frames the encoder is given: the same 8-bit pixels (a float32 tie may round one level apart)
    assert max(np.abs(a.astype(int) - b).max() for a, b in zip(*handed_to_encoder.values())) <= 1
    (single, single_times), (batched, batched_times) = (read_video_frames(tmp_path / f"batch{n}.mp4") for n in (1, 3))
    assert len(batched) == 7 and batched_times == single_times
    # after x264 only within the codec's loss: a one-level change can turn one of its decisions
    assert min(psnr(a, b) for a, b in zip(batched, single)) > MIN_ENCODED_PSNR_DB
    assert stream_packets(tmp_path / "batch3.mp4", "audio") == stream_packets(clip, "audio")
    for bad in (0, 2.5):
        with pytest.raises(SettingsError, match="batch_size"):
            VideoEnhancer(enhancer, batch_size=bad)
