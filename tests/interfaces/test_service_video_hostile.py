"""The app's Video tab (`EnhancementService.enhance_video_file`, what `/enhance_video` runs) against hostile
uploads, in this process with a random model: frames that grow past `--max-video-megapixels` mid-stream, a
photo named .mp4, and a WebM (which takes no H.264). One line naming the upload, or the enhanced video."""

from __future__ import annotations

import pytest
from photo_files import write_camera_jpeg
from video_clips import read_video_frames, write_resizing_clip, write_test_clip

av = pytest.importorskip("av", reason="video needs PyAV (the video extra)")


@pytest.fixture(scope="module")
def service(model_dir, tmp_path_factory):
    from cliplit.interfaces.service import EnhancementService
    from cliplit.model.loading import load_model

    service = EnhancementService(load_model(model_dir, device="cpu"), max_video_megapixels=0.1,
                                 output_dir=tmp_path_factory.mktemp("results"))
    yield service
    service.close()


def test_frames_growing_past_the_app_limit_mid_stream_are_refused(service, tmp_path):
    from cliplit.interfaces.service import UploadError

    clip = write_resizing_clip(tmp_path / "grow.mp4", [(64, 48)] * 3 + [(800, 600)] * 2)  # the header says 64 x 48
    with pytest.raises(UploadError) as refused:
        service.enhance_video_file(clip, 1.0)
    assert str(refused.value) == "grow.mp4: frame 4: 800 x 600 pixels per frame (0.48 MP) is over the 0.1 MP limit"
    assert list(service.output_dir.iterdir()) == []  # nothing served, nothing left


def test_a_photo_named_mp4_is_sent_to_the_photo_tab(service, tmp_path):
    from cliplit.interfaces.service import UploadError

    photo = write_camera_jpeg(tmp_path / "camera.jpg").rename(tmp_path / "camera.mp4")
    with pytest.raises(UploadError) as refused:
        service.enhance_video_file(photo, 1.0)
    assert str(refused.value) == "camera.mp4: is an image (JPEG), not a video: use the Photo tab"


def test_a_webm_upload_is_enhanced_into_a_webm(service, tmp_path):
    clip = write_test_clip(tmp_path / "clip.webm", frames=3, encoder="libvpx-vp9", audio=False)
    target, frames, notes = service.enhance_video_file(clip, 1.0, fast=True)
    assert (target.suffix, frames, notes) == (".webm", 3, [])
    assert len(read_video_frames(target)[0]) == 3


@pytest.mark.reference
def test_the_notes_of_a_video_name_the_upload_not_the_servers_path(tmp_path):
    from conftest import ENHANCEMENT_CHECKPOINT, smallest_reference_image

    from cliplit.interfaces.service import EnhancementService
    from cliplit.model.loading import load_model

    (tmp_path / "uploads").mkdir()
    clip = write_test_clip(tmp_path / "uploads" / "clip.mp4", frames=3, width=128, height=96, audio=False,
                           photo=smallest_reference_image())  # a backlit photo: auto cleans its shadows, and says so
    service = EnhancementService(load_model(ENHANCEMENT_CHECKPOINT, device="cpu"), output_dir=tmp_path / "results")
    try:
        _, _, notes = service.enhance_video_file(clip, None, denoise=True, fast=True)
    finally:
        service.close()
    assert notes and all(note.startswith("clip.mp4: ") and str(tmp_path) not in note for note in notes), notes
