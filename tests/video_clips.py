"""Test clips written with PyAV (tiny, so the video tests stay fast); `write_test_clip` also makes the
`clip.mp4` of the documentation's snippets: `write_test_clip("clip.mp4", photo="backlit.jpg")`."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

CREATION_TIME = "2024-05-01T12:00:00.000000Z"
TITLE = "cliplit test clip"
AUDIO_RATE = 8000
BT709 = 1  # AVCOL_PRI/TRC/SPC_BT709
LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG


def clip_frames(frames: int, height: int, width: int, photo: str | Path | None = None, seed: int = 0) -> list[np.ndarray]:
    """(height, width, 3) uint8 frames: a backlit-looking gradient with a bright block entering (or a pan over
    `photo`, resized to twice the width)."""
    if photo is not None:
        from PIL import Image

        with Image.open(photo) as image:
            image = image.convert("RGB")
            scale = 2 * width / image.width
            big = np.asarray(image.resize((2 * width, max(height, round(image.height * scale)))))
        step = max(1, width // max(frames, 1))
        return [np.ascontiguousarray(big[:height, t * step : t * step + width]) for t in range(frames)]
    rng = np.random.default_rng(seed)
    base = np.linspace(20, 90, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    base[..., 2] += 20
    texture = rng.uniform(-10, 10, (height, width, 3)).astype(np.float32)
    out = []
    for t in range(frames):
        frame = base + texture
        frame[: height // 2, : (t + 1) * width // (2 * frames)] = 250
        out.append(np.clip(frame, 0, 255).astype(np.uint8))
    return out


def write_test_clip(path: str | Path, frames: int = 12, width: int = 64, height: int = 48, fps: int = 24,
                    vfr: bool = False, audio: bool = True, rotation: int = 0, encoder: str = "libx264",
                    pix_fmt: str = "yuv420p", photo: str | Path | None = None, metadata: bool = True,
                    subtitles: list[str] | None = None, timecode: str | None = None) -> Path:
    """
    Write a small video: `frames` frames (variable frame rate when `vfr`: 1, 2, 3 frame intervals in
    turn), BT.709 limited-range tags, a display rotation of `rotation` degrees, a mono AAC track,
    creation time and title tags; `subtitles`: a SubRip track showing each text in turn, one per frame
    (Matroska holds it: give a .mkv path); `timecode` ("HH:MM:SS:FF"): a QuickTime timecode data track
    (a .mov or .mp4 path). Returns `path`.
    """
    import av

    path = Path(path)
    subtitle_packets, subtitle_source = [], None
    if subtitles:  # PyAV encodes no subtitles: SubRip packets are demuxed from a small .srt file
        srt = path.with_name(f"{path.stem}.srt")
        srt.write_text("".join(f"{i + 1}\n00:00:00,{i * 1000 // fps:03d} --> 00:00:00,{(i + 1) * 1000 // fps - 1:03d}\n{text}\n\n"
                               for i, text in enumerate(subtitles)))
        subtitle_source = av.open(str(srt))
        subtitle_packets = [p for p in subtitle_source.demux() if p.dts is not None]
    container = av.open(str(path), "w")
    if metadata:
        container.metadata["creation_time"] = CREATION_TIME
        container.metadata["title"] = TITLE
    video = container.add_stream(encoder, rate=fps, options={"x265-params": "log-level=error"} if encoder == "libx265" else {})
    video.width, video.height, video.pix_fmt = width, height, pix_fmt
    time_base = Fraction(1, fps * 6)  # kept aside: the muxer changes the stream's own when it writes the header
    video.time_base = video.codec_context.time_base = time_base
    video.color_range, video.color_primaries, video.color_trc, video.colorspace = LIMITED_RANGE, BT709, BT709, BT709
    if rotation:
        video.set_display_rotation(rotation)
    if timecode:  # the mov muxer writes a tmcd data track from the video stream's tag
        video.metadata["timecode"] = timecode
    sound = container.add_stream("aac", rate=AUDIO_RATE, layout="mono") if audio else None
    subtitle_stream = container.add_stream_from_template(subtitle_source.streams[0]) if subtitle_source else None
    samples_per_tick = AUDIO_RATE * time_base  # audio samples per video time-base tick
    pts = written = 0
    for index, pixels in enumerate(clip_frames(frames, height, width, photo)):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.colorspace, frame.color_range = BT709, LIMITED_RANGE
        frame = frame.reformat(format=pix_fmt)
        frame.pts, frame.time_base = pts, time_base
        pts += 6 * (1 + index % 3 if vfr else 1)
        container.mux(video.encode(frame))
        if sound is not None:  # the audio up to this frame's end, interleaved as a camera writes it
            end = int(pts * samples_per_tick)
            tone = (0.3 * np.sin(np.arange(written, end) * 0.05)).astype(np.float32)[None]
            chunk = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone), format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, written = AUDIO_RATE, written, end
            container.mux(sound.encode(chunk))
        if index < len(subtitle_packets):
            subtitle_packets[index].stream = subtitle_stream
            container.mux(subtitle_packets[index])
    container.mux(video.encode())
    if sound is not None:
        container.mux(sound.encode())
    container.close()
    if subtitle_source is not None:
        subtitle_source.close()
        srt.unlink()
    return path


def read_video_frames(path: str | Path, fmt: str = "rgb24") -> tuple[list[np.ndarray], list[float]]:
    """The decoded frames of the first video stream of `path` ((H, W, 3) arrays) and their times in seconds."""
    import av

    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
        return [f.to_ndarray(format=fmt) for f in frames], [float(f.pts * f.time_base) for f in frames]


def stream_packets(path: str | Path, kind: str = "audio") -> list[bytes]:
    """The packets of the first `kind` stream of `path`, as bytes."""
    import av

    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [bytes(p) for p in container.demux(stream) if p.size]


def write_resizing_clip(path: str | Path, sizes: list[tuple[int, int]], fps: int = 24) -> Path:
    """
    Write an H.264 clip whose frame `i` is `sizes[i]` = (width, height): a frame size that changes
    mid-stream while the header states the first (each frame its own encoder, its parameter sets in the
    stream, as in a concatenation). Returns `path`.
    """
    import av

    path = Path(path)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = *sizes[0], "yuv420p"
    time_base = Fraction(1, fps)
    for index, (width, height) in enumerate(sizes):
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = width, height, "yuv420p", time_base
        frame = av.VideoFrame.from_ndarray(clip_frames(1, height, width, seed=index)[0], format="rgb24").reformat(format="yuv420p")
        for packet in encoder.encode(frame) + encoder.encode(None):
            packet.stream, packet.time_base = stream, time_base
            packet.pts = packet.dts = index
            container.mux(packet)
    container.close()
    return path
