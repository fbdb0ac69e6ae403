"""Enhancing many files: expanding inputs, naming outputs safely, and keeping the device busy.

Reading the next image and writing the previous result run in threads while the network runs
(Pillow, OpenCV and PyTorch release the GIL), so decoding and encoding overlap with compute.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CLIPLITError, display_name, first_line
from ..imaging.codec import DecodedImage
from ..imaging.files import OUTPUT_SUFFIX, image_extensions, read_image, write_image
from ..safety.outputs import Reads, file_identity
from ..safety.reading import NotARegularFileError, glob_files, is_pattern, require_regular_file, split_pattern, walk_files
from ..video.reading import holds_video
from ..video.settings import VIDEO_EXTENSIONS
from .resume import Provenance, provenance

PREFETCH_IMAGES = 2


@dataclass(frozen=True)
class Job:
    """One input file and the output file it will be written to."""

    source: Path
    target: Path


@dataclass(frozen=True)
class Failure:
    """An input that could not be processed, with a one-line reason that names the file."""

    source: str
    message: str


def expand_inputs(inputs: list[str], recursive: bool = False) -> tuple[list[Path], list[Failure]]:
    """
    Files, folders (their image files, sorted) and glob patterns -> (files in order, without
    duplicates; failures for inputs that match nothing or are not regular files). Traversals are
    loop-safe (`cliplit.safety.reading`). A file reached several times (links, overlapping inputs) is
    named by the path the user named directly, else by the first path found that is not a link.
    """
    extensions = image_extensions() | set(VIDEO_EXTENSIONS)
    found: list[tuple[Path, bool]] = []  # (path, named directly by the user)
    failures: list[Failure] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = [p for p in walk_files(path, recursive=recursive) if p.suffix.lower() in extensions]
            if not matches:
                failures.append(Failure(item, f"{display_name(item)}: folder holds no image files"))
            found.extend((p, False) for p in matches)
        elif os.path.lexists(path):
            try:
                found.append((require_regular_file(path, "image file"), True))
            except NotARegularFileError as error:
                failures.append(Failure(item, str(error)))
        elif is_pattern(item):
            matches = glob_files(item)
            if not matches:
                failures.append(Failure(item, f"{display_name(item)}: pattern matches no file"))
            found.extend((p, False) for p in matches)
        else:
            failures.append(Failure(item, f"{display_name(item)}: no such file or folder"))
    chosen: dict[Path, tuple[int, int, Path]] = {}  # resolved -> (rank, first position, path)
    for position, (path, direct) in enumerate(found):
        rank = 0 if direct else 1 if not _through_link(path) else 2
        resolved = path.resolve()
        if resolved not in chosen or rank < chosen[resolved][0]:
            chosen[resolved] = (rank, chosen.get(resolved, (0, position))[1], path)
    return [path for _, _, path in sorted(chosen.values(), key=lambda entry: entry[1])], failures


def _through_link(path: Path) -> bool:
    """Whether `path` or a folder on its way (below the current folder) is a symbolic link."""
    return any(part.is_symlink() for part in (path, *path.parents) if part != Path(part.anchor) and part != Path("."))


def reads_of_inputs(inputs: list[str], files: list[Path], recursive: bool = False) -> Reads:
    """What a batch reads: each input file, each folder (its tree with `recursive`), each pattern's root."""
    reads = Reads()
    for path in files:
        reads.add_file(path)
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            reads.add_folder(path, recursive)
        elif not os.path.lexists(path) and is_pattern(item):
            root, components = split_pattern(item)
            reads.add_folder(root, recursive=len(components) > 1)
    return reads


@dataclass
class Plan:
    """What a batch will do: jobs to run, inputs that cannot run (failures), inputs whose output exists
    already, made with the same model and settings (skipped: a rerun completes an interrupted batch), and
    inputs whose existing output was made otherwise or says nothing of how (kept, not redone), with the
    settings that differ. --overwrite redoes both."""

    jobs: list[Job]
    failures: list[Failure]
    skipped: list[Job]
    kept: list[Job] = field(default_factory=list)
    kept_differences: set[str] = field(default_factory=set)


def output_names(source: Path, suffix: str = OUTPUT_SUFFIX):
    """`<stem><suffix>`, then `<stem>.<ext><suffix>`, then `<stem>.<ext>-2<suffix>`, ... (for inputs that share a
    stem, such as a camera's RAW+JPEG pairs); `suffix`: the output format's extension (.png by default).
    A video keeps its container: `<stem>.<ext>`, then `<stem>-2.<ext>`, ... (a file named like a video
    that holds an image is named as an image: `cliplit.video.reading.holds_video`)."""
    if holds_video(source):
        yield from (f"{source.stem}{'' if n == 1 else f'-{n}'}{source.suffix.lower()}" for n in itertools.count(1))
        return
    yield f"{source.stem}{suffix}"
    yield f"{source.stem}{source.suffix.lower()}{suffix}"
    number = 2
    while True:
        yield f"{source.stem}{source.suffix.lower()}-{number}{suffix}"
        number += 1


def plan_jobs(files: list[Path], output_dir: Path, overwrite: bool = False,
              suffix_for: Callable[[Path], str] | None = None,
              settings_for: Callable[[Path], dict] | None = None) -> Plan:
    """
    Name each output in `output_dir` (`output_names`: inputs sharing a stem are named apart, the same
    way on every run; `suffix_for(source)`: the output's extension, default .png). Never targets an
    input, a link to one or a folder. Unless `overwrite`, an existing output is skipped when its record
    says it was made with `settings_for(source)` (`cliplit.interfaces.resume`), and kept otherwise;
    without `settings_for`, every existing output is skipped.
    """
    inputs = {p.resolve() for p in files}
    input_ids = {file_identity(p) for p in files} - {None}
    taken: set[Path] = set()
    plan = Plan([], [], [])
    for source in files:
        suffix = suffix_for(source) if suffix_for is not None else OUTPUT_SUFFIX
        target = next(output_dir / name for name in output_names(source, suffix)
                      if (output_dir / name).resolve() not in taken)
        resolved = target.resolve()
        taken.add(resolved)
        name, output = display_name(source), display_name(target)
        if resolved in inputs or file_identity(target) in input_ids:
            plan.failures.append(Failure(str(source), f"{name}: output {output} is an input (or a link to one); choose another --output"))
        elif target.is_dir():
            plan.failures.append(Failure(str(source), f"{name}: output {output} is a folder"))
        elif target.exists() and not overwrite:
            made = provenance(target, settings_for(source), source) if settings_for is not None else Provenance(True)
            if made.same:
                plan.skipped.append(Job(source, target))
            else:
                plan.kept.append(Job(source, target))
                plan.kept_differences.update(made.differences)
        else:
            plan.jobs.append(Job(source, target))
    return plan


def run_jobs(
    jobs: list[Job],
    enhance: Callable[[DecodedImage], DecodedImage],
    on_done: Callable[[Job, Failure | None], None] | None = None,
    read: Callable[[Path], DecodedImage] = read_image,
    on_note: Callable[[str], None] | None = None,
    write: Callable[[Path, DecodedImage], list[str] | None] = write_image,
    on_enhanced: Callable[[Job, DecodedImage], None] | None = None,
) -> list[Failure]:
    """
    Read (with `read`), enhance and write (with `write`) every job, overlapping reading and writing with `enhance`. A
    file that fails is reported (one line) and the rest go on; a decoded image's note, and each note `write`
    returns (what it could not write, e.g. metadata an encoder refused), go to `on_note`, naming the file; each
    enhanced image goes to `on_enhanced(job, image)` (before it is written). Returns the failures.
    """
    failures: list[Failure] = []

    def finish(job: Job, failure: Failure | None) -> None:
        if failure is not None:
            failures.append(failure)
        if on_done is not None:
            on_done(job, failure)

    with ThreadPoolExecutor(max_workers=PREFETCH_IMAGES, thread_name_prefix="cliplit-io") as pool:
        pending_writes: list[tuple[Job, Future]] = []
        for job, reading in _prefetch(pool, jobs, read):
            try:
                image = reading.result()
                if image.note and on_note is not None:
                    on_note(image.note)
                enhanced = enhance(image)
            except CLIPLITError as error:
                finish(job, Failure(str(job.source), str(error)))
                continue
            except (RuntimeError, ValueError, MemoryError) as error:
                finish(job, Failure(str(job.source), f"{display_name(job.source)}: enhancement failed: {first_line(error)}"))
                continue
            if on_enhanced is not None:
                on_enhanced(job, enhanced)
            pending_writes.append((job, pool.submit(write, job.target, enhanced)))
            pending_writes = _collect_writes(pending_writes, finish, on_note, wait=False)
        _collect_writes(pending_writes, finish, on_note, wait=True)
    return failures


def _prefetch(pool: ThreadPoolExecutor, jobs: list[Job], read) -> Iterator[tuple[Job, Future]]:
    """Yield (job, future of its decoded image), keeping `PREFETCH_IMAGES` reads in flight."""
    queue: list[tuple[Job, Future]] = []
    for job in jobs:
        queue.append((job, pool.submit(read, job.source)))
        if len(queue) > PREFETCH_IMAGES:
            yield queue.pop(0)
    yield from queue


def _collect_writes(pending, finish, on_note, wait: bool):
    remaining = []
    for job, future in pending:
        if not wait and not future.done():
            remaining.append((job, future))
            continue
        try:
            notes = future.result() or []
            for note in notes if on_note is not None else ():
                on_note(f"{display_name(job.source)}: {note}")
            finish(job, None)
        except (OSError, ValueError) as error:
            reason = getattr(error, "strerror", None) or first_line(error)  # "No space left on device", not its temporary's name
            finish(job, Failure(str(job.source), f"{display_name(job.source)}: could not write {display_name(job.target)}: {reason}"))
    return remaining


def split_for_process(items: list, process_index: int, num_processes: int) -> list:
    """The share of `items` for one of `num_processes` processes (round-robin, so sizes balance)."""
    return items[process_index::num_processes]


__all__ = ["Job", "Failure", "Plan", "expand_inputs", "reads_of_inputs", "output_names", "plan_jobs", "run_jobs", "split_for_process"]
