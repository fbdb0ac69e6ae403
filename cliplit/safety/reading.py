"""The one reading rule: only regular files are opened, and every traversal is loop-safe.

- `require_regular_file` refuses FIFOs, devices, sockets and folders with one line before anything
  opens them (opening a FIFO blocks until a writer comes, forever).
- `walk_files` and `glob_files` follow symbolic links to folders (a user's photo library often is one)
  but visit each real folder once, so a link loop ends the walk instead of hanging it. Files are
  named by the path under the folder or pattern the user gave, never by where a link points.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import CLIPLITError, display_name

GLOB_CHARACTERS = "*?["
RECURSIVE_COMPONENT = "**"
SPECIAL_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFileError(CLIPLITError, OSError):
    """A path names something other than a regular file (missing, a folder, a FIFO, a device, a socket)."""


def file_kind(status: os.stat_result) -> str:
    """What a non-regular file is, in words ("a folder", "a named pipe (FIFO)", ...)."""
    if stat.S_ISDIR(status.st_mode):
        return "a folder"
    for test, kind in SPECIAL_FILE_KINDS:
        if test(status.st_mode):
            return kind
    return "not a regular file"


def require_regular_file(path: str | os.PathLike, what: str = "file") -> Path:
    """`path` if it is (or links to) a regular file; else `NotARegularFileError` "<path>: <reason>"."""
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        reason = "a broken symbolic link" if path.is_symlink() else "no such file"
        raise NotARegularFileError(f"{display_name(path)}: {reason}") from None
    except OSError as error:
        raise NotARegularFileError(f"{display_name(path)}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISREG(status.st_mode):
        raise NotARegularFileError(f"{display_name(path)}: is {file_kind(status)}, not a regular {what}")
    return path


def is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _folder_id(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def walk_files(folder: str | os.PathLike, recursive: bool = True, max_depth: int | None = None) -> Iterator[Path]:
    """
    The regular files in `folder` (in its subfolders too when `recursive`, at most `max_depth` levels
    down), sorted by name level by level, each named under `folder`. Links to folders are followed, but
    every real folder is visited once: a symbolic-link loop ends the walk. Unreadable folders are skipped.
    """
    root = Path(folder)
    visited: set[tuple[int, int]] = set()

    def visit(directory: Path, depth: int) -> Iterator[Path]:
        identity = _folder_id(directory)
        if identity is None or identity in visited:
            return
        visited.add(identity)
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except OSError:
            return
        subfolders = []
        for entry in entries:
            path = directory / entry.name
            if is_regular_file(path):
                yield path
            elif (recursive and (max_depth is None or depth < max_depth)) and _folder_id(path) is not None:
                subfolders.append(path)
        for subfolder in subfolders:
            yield from visit(subfolder, depth + 1)

    yield from visit(root, 0)


def is_pattern(text: str) -> bool:
    return any(ch in text for ch in GLOB_CHARACTERS)


def split_pattern(pattern: str) -> tuple[Path, list[str]]:
    """`photos/2024/**/*.jpg` -> (Path("photos/2024"), ["**", "*.jpg"]): the literal root and the rest."""
    parts = Path(pattern).parts
    literal = 0
    while literal < len(parts) - 1 and not is_pattern(parts[literal]):
        literal += 1
    root = Path(*parts[:literal]) if literal else Path(".")
    return root, list(parts[literal:])


def _matches(parts: list[str], components: list[str]) -> bool:
    """Whether path components `parts` match the pattern `components` (`**`: zero or more folders)."""
    if not components:
        return not parts
    component = components[0]
    if component == RECURSIVE_COMPONENT:
        return any(_matches(parts[skip:], components[1:]) for skip in range(len(parts) + 1))
    if not parts or (parts[0].startswith(".") and not component.startswith(".")):  # as glob: no hidden names
        return False
    return fnmatch.fnmatchcase(parts[0], component) and _matches(parts[1:], components[1:])


def glob_files(pattern: str) -> list[Path]:
    """
    The regular files matching a glob pattern (`*`, `?`, `[...]`, and `**` for any depth), sorted, named
    as `glob.glob(pattern, recursive=True)` names them, but loop-safe (see `walk_files`).
    """
    root, components = split_pattern(pattern)
    recursive = RECURSIVE_COMPONENT in components
    depth = None if recursive else len(components) - 1
    return sorted(path for path in walk_files(root, recursive=recursive or depth > 0, max_depth=depth)
                  if _matches(list(path.relative_to(root).parts), components))


__all__ = ["NotARegularFileError", "file_kind", "glob_files", "is_pattern", "is_regular_file", "require_regular_file",
           "split_pattern", "walk_files"]
