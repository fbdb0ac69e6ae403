"""The one output-safety rule of every command that writes (enhance, evaluate, export, convert, models add,
training, the app).

An output never goes over, into or below anything the command reads, even with `--overwrite`:

- `Reads` records what a command reads: files, flat folders (their own files) and trees (folders read
  recursively, model folders);
- `check_output_file` / `check_output_folder` refuse, with one line naming the option, an output place
  that is an input (or a link to one), inside what is read, a folder where a file goes (or the
  reverse), under a file, or not writable; they run before the expensive work;
- `OutputFolder` creates the output folder and removes again what it created when nothing was
  written into it (a failed run leaves no empty folder behind);
- `atomic_write` is how every user-visible file (and model folder) is written: into a hidden temporary
  beside it (`partial_path`), flushed to disk, renamed over it; an error or an interruption leaves the
  old file (or nothing) and no partial one;
- `publish` gives a written file the permissions the umask allows (temporary files are created 0600;
  a shared model cache must stay readable by its other users).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SettingsError, display_name

PARTIAL_MARK = ".partial"
FILE_PERMISSIONS = 0o666
FOLDER_PERMISSIONS = 0o777


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file, the same for every (hard or symbolic) link to it; None if absent."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _resolved(path: str | os.PathLike) -> Path:
    return Path(path).expanduser().resolve()


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


@dataclass
class Reads:
    """What a command reads: `files`, `folders` (their own files only) and `trees` (everything below them)."""

    files: set[Path] = field(default_factory=set)
    file_ids: set[tuple[int, int]] = field(default_factory=set)
    folders: set[Path] = field(default_factory=set)
    trees: set[Path] = field(default_factory=set)

    def add_file(self, path: str | os.PathLike) -> "Reads":
        self.files.add(_resolved(path))
        identity = file_identity(Path(path))
        if identity is not None:
            self.file_ids.add(identity)
        return self

    def add_folder(self, path: str | os.PathLike, recursive: bool) -> "Reads":
        (self.trees if recursive else self.folders).add(_resolved(path))
        return self

    def add_model(self, path: str | os.PathLike) -> "Reads":
        """A model file, or a model folder (read as a tree)."""
        path = Path(path)
        return self.add_folder(path, recursive=True) if path.is_dir() else self.add_file(path)

    def reading_place(self, path: Path) -> str | None:
        """How `path` (a place something would be written) meets what is read, in words; None when it does not."""
        resolved = _resolved(path)
        if resolved in self.files or (file_identity(path) in self.file_ids):
            return "is an input (or a link to one)"
        for tree in sorted(self.trees):
            if _is_within(resolved, tree):
                return f"is {'' if resolved == tree else 'inside '}{display_name(tree)}, which is read"
        return None


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_creatable(path: Path, option: str) -> None:
    """The nearest existing folder above `path` is a writable folder (so `path` can be created)."""
    existing = _nearest_existing(path.parent if path.name else path)
    if not existing.is_dir():
        raise SettingsError(f"{display_name(path)}: cannot create {option}: {display_name(existing)} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SettingsError(f"{display_name(path)}: cannot create {option}: {display_name(existing)} is not writable")


def check_output_file(path: str | os.PathLike, reads: Reads, option: str, overwrite: bool = False,
                      overwrite_option: str = "--overwrite") -> Path:
    """
    Refuse (`SettingsError`, one line naming `option`) an output file that is read (an input, a link to
    one, or inside a folder that is read; `overwrite` does not change that), a folder, an existing file
    without `overwrite`, or a place that cannot be created or written.
    """
    path = Path(path)
    name = display_name(path)
    conflict = reads.reading_place(path)
    if conflict is not None:
        raise SettingsError(f"{name}: {option} {conflict}: cliplit never writes over what it reads; choose another {option}")
    if path.is_dir():
        raise SettingsError(f"{name}: {option} is a folder, not a file")
    if os.path.lexists(path):
        if not overwrite:
            raise SettingsError(f"{name}: {option} exists (pass {overwrite_option} to replace it)")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise SettingsError(f"{name}: {option} cannot be replaced: its folder is not writable")
    _check_creatable(path, option)
    return path


def check_output_folder(folder: str | os.PathLike, reads: Reads, option: str, file_extensions: set[str] = frozenset()) -> Path:
    """
    Refuse (`SettingsError`, one line naming `option`) an output folder that is an input, a folder that
    is read (flat, or a tree it lies in), an existing file, a name ending like a file of
    `file_extensions` (`--output result.jpg` means a file, not a folder), or one that cannot be created
    or written.
    """
    folder = Path(folder)
    name = display_name(folder)
    conflict = reads.reading_place(folder)
    if conflict is None and _resolved(folder) in reads.folders:
        conflict = "is an input folder"
    if conflict is not None:
        raise SettingsError(f"{name}: {option} {conflict}: its outputs would mix with (or become) inputs; choose another {option}")
    if os.path.lexists(folder) and not folder.is_dir():
        raise SettingsError(f"{name}: {option} exists and is not a folder")
    if not folder.exists() and folder.suffix.lower() in file_extensions:
        raise SettingsError(f"{name}: {option} names a folder, and this name ends like an image file; "
                            f"give a folder (outputs are named after their inputs)")
    if folder.is_dir():
        if not os.access(folder, os.W_OK | os.X_OK):
            raise SettingsError(f"{name}: {option} is not writable")
    else:
        _check_creatable(folder, option)
    return folder


class OutputFolder:
    """
    `with OutputFolder(path, option):` creates `path` (and missing parents) and, on leaving, removes the
    folders it created if they are still empty: a run that wrote nothing leaves nothing behind.
    """

    def __init__(self, path: str | os.PathLike, option: str = "--output", keep: bool = False):
        self.path, self.option, self.keep = Path(path), option, keep  # keep: other processes share the folder
        self.created: list[Path] = []

    def __enter__(self) -> Path:
        missing = [p for p in (self.path, *self.path.parents) if not os.path.lexists(p)]
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as error:
                self.remove_created()
                raise SettingsError(f"{display_name(self.path)}: cannot create the {self.option} folder "
                                    f"({error.strerror or error})") from None
            self.created.append(folder)
        return self.path

    def remove_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
        self.created = []

    def __exit__(self, *exc_info) -> None:
        if not self.keep:
            self.remove_created()


def current_umask() -> int:
    """The process's umask, read without changing it (Linux: /proc/self/status; elsewhere a quick set-and-restore)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publish(path: str | os.PathLike) -> None:
    """Give a written file (or folder, recursively) the permissions a newly created one gets under the umask."""
    path = Path(path)
    mask = current_umask()
    targets = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink() else [])
    for target in targets:
        if target.is_symlink():
            continue
        mode = FOLDER_PERMISSIONS if target.is_dir() else FILE_PERMISSIONS
        current = stat.S_IMODE(target.stat().st_mode)
        wanted = mode & ~mask
        if target.is_file() and current & 0o111:
            wanted |= current & 0o111 & ~mask  # keep executability
        if current != wanted:
            os.chmod(target, wanted)


def partial_path(path: str | os.PathLike, suffix: str = "") -> Path:
    """The temporary name an atomic write of `path` uses: hidden, beside it, marked with the process id
    (`suffix`: an extension that tells a writer the format, such as ".png")."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}{PARTIAL_MARK}{suffix}")


def _flush_to_disk(path: Path) -> None:
    """fsync a written file, or every file of a written folder, so that a rename never publishes unwritten data."""
    for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if item.is_file() and not item.is_symlink():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """fsync a folder's entry table (a rename into it survives a crash); a no-op where the OS cannot."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = "", readable: bool = False) -> Iterator[Path]:
    """
    Write `path` atomically: `with atomic_write(path) as partial:` write the file (or create the folder)
    `partial`, a hidden temporary beside `path` (`partial_path(path, suffix)`). When the block ends without
    error the result is flushed to disk and renamed over `path` (a folder's files are moved into `path` one
    by one, each renamed over its old version; other files there stay); on an error or an interruption
    the temporary is removed and `path` keeps what it held. `readable`: give the result the umask's
    permissions (`publish`), for temporaries that their writer creates 0600.
    """
    path = Path(path)
    partial = partial_path(path, suffix)
    try:
        yield partial
        _flush_to_disk(partial)
        if readable:
            publish(partial)
        if partial.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            for written in sorted(partial.iterdir()):
                os.replace(written, path / written.name)
            _sync_folder(path)
        else:
            os.replace(partial, path)
            _sync_folder(path.parent)
    finally:
        _remove(partial)


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8, newlines as given) to `path` through `atomic_write`."""
    with atomic_write(path) as partial, open(partial, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


__all__ = ["OutputFolder", "PARTIAL_MARK", "Reads", "atomic_write", "write_text_atomically", "check_output_file", "check_output_folder", "current_umask",
           "file_identity", "partial_path", "publish"]
