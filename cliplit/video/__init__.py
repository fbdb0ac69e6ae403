"""Backlit video: `cliplit enhance clip.mp4` through PyAV (FFmpeg inside its wheels, no system ffmpeg).

- `settings`: the constants and names the command line shows (no heavy import);
- `reading`: opening a video file, its limits and its one-line errors;
- `transcode`: the streaming pipeline (decode, enhance, encode in overlapping threads, other streams copied);
- `stability`: the warping error metric (Lai et al., ECCV 2018) used to measure flicker;
- `scenes`: generated scenes for the stability measurements;
- `options`: the command line's video options;
- `enhancer`: `VideoEnhancer`, the Python API beside `Enhancer` (the CLI's batch: `cliplit.interfaces.video_batch`).

Nothing is imported at package import: PyAV, OpenCV and torch load only when a video is processed.
"""
