"""`cliplit enhance clip.mp4 --frame-batch N`: the frames per pass of the video's `VideoEnhancer` (default: 4 on
a GPU, 1 on a CPU); a number below 1 is refused before anything is loaded."""

from __future__ import annotations

import pytest

from cliplit.interfaces.cli import build_parser, video_enhancer


def enhance_args(*options: str):
    return build_parser().parse_args(["enhance", "clip.mp4", *options])


def test_frame_batch_sets_the_frames_per_pass(random_network):
    from cliplit.engine.enhancer import Enhancer

    enhancer = Enhancer(random_network, device="cpu")
    assert video_enhancer(enhancer, enhance_args()).options.batch_size == 1  # a CPU's default
    assert video_enhancer(enhancer, enhance_args("--frame-batch", "8")).options.batch_size == 8


@pytest.mark.parametrize("value", ["0", "2.5", "many"])
def test_frame_batch_below_one_or_not_whole_is_refused(value, capsys):
    with pytest.raises(SystemExit) as stop:
        enhance_args("--frame-batch", value)
    assert stop.value.code == 2 and "--frame-batch" in capsys.readouterr().err


@pytest.fixture
def random_network():
    from cliplit import CLIPLITNetwork

    return CLIPLITNetwork().eval()
