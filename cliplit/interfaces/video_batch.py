"""Videos in a `cliplit enhance` batch: each job enhanced by a `VideoEnhancer`, with a progress bar in frames."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ..errors import CLIPLITError, display_name, first_line
from .batch import Failure


def video_failure(source, error: CLIPLITError) -> Failure:
    """The `Failure` of the video `source`: `error`'s line, named by the file as every failure line is
    (PyAV missing names none)."""
    name = display_name(source)
    return Failure(str(source), str(error) if str(error).startswith(name) else f"{name}: {error}")


def run_video_jobs(jobs: list, video_enhancer, quiet: bool = False,
                   on_done: Callable[[object, object], None] | None = None) -> list:
    """
    Enhance each `Job` (`cliplit.interfaces.batch.Job`, a video source and its target) in turn; a video
    that fails is reported (one line, nothing written) and the others go on. Returns the `Failure`s.
    """
    from tqdm.auto import tqdm

    failures = []
    for job in jobs:
        progress = tqdm(unit="frame", desc=display_name(job.source.name), disable=quiet, file=sys.stderr, leave=True)

        def start(estimated: int, progress=progress) -> None:
            progress.reset(total=estimated or None)

        failure = None
        try:
            video_enhancer.enhance_file(job.source, job.target, overwrite=True, on_start=start,
                                        on_frame=lambda progress=progress: progress.update(1),
                                        on_note=lambda note, progress=progress: progress.write(f"note: {note}", file=sys.stderr),
                                        on_denoise=None if quiet else lambda note, progress=progress: progress.write(f"note: {note}", file=sys.stderr))
        except CLIPLITError as error:
            failure = video_failure(job.source, error)
        except (RuntimeError, ValueError, MemoryError) as error:
            failure = Failure(str(job.source), f"{display_name(job.source)}: enhancement failed: {first_line(error)}")
        finally:
            progress.close()
        if failure is not None:
            failures.append(failure)
            print(f"error: {failure.message}", file=sys.stderr)
        if on_done is not None:
            on_done(job, failure)
    return failures


__all__ = ["run_video_jobs", "video_failure"]
