"""Safe output: small files written atomically, and output folders that never clobber.

A kill never leaves a torn small file that looks finished (:func:`atomic_write_text`). Every
command that writes files claims them through :class:`OutputDir` (or
:func:`check_output_file` for a single file): it refuses to overwrite a file it did not write
unless ``--force``, and never writes into its own input.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from adamae_rl.errors import InputFileError, OutputError


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")  # per process: ranks may write the same file
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def atomic_write_json(path: str | Path, value: Any) -> Path:
    """``value`` as indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2) + "\n")


# --------------------------------------------------------------------------- safe output folders

def record_name(command: str) -> str:
    """The file in an output folder that lists what ``command`` wrote there."""
    return f".adamae_rl-{command}.json"


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (after resolving links and ``..``)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


class OutputDir:
    """A folder a command writes into, and the record of what it wrote there.

    The record (:func:`record_name`, one per command, so commands that share a folder never
    take each other's files) lists every file and sub-folder the command claimed. A claim of a
    path that exists but is not in the record is refused unless ``force``, so a command never
    overwrites a user's file of the same name; a rerun overwrites (or resumes) only its own
    outputs. The record is written before the claimed files, so a kill
    between the two leaves nothing unrecorded.

    Args:
        path: the folder (created on the first claim).
        command: the command's name, for messages ("data.prepare").
        force: overwrite existing files the record does not list.
        inputs: files and folders the command reads; none may lie inside ``path`` (a command
            that wrote into its own input would read its output back on the next run).
        advice: what the message tells the user to do about a foreign file.

    Raises:
        OutputError: ``path`` is not a folder, or holds one of ``inputs``.
    """

    def __init__(self, path: str | Path, command: str, force: bool = False, inputs: Iterable[str | Path] = (),
                 advice: str = "pass --force to overwrite it, or choose another output folder") -> None:
        self.path = Path(path)
        self.command = command
        self.force = force
        self.advice = advice
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"{command}: output {self.path} exists and is not a folder")
        for source in inputs:
            if is_inside(source, self.path):
                raise OutputError(
                    f"{command}: output folder {self.path} holds the input {source}; a command never writes "
                    "into its own input: choose another output folder"
                )
        self.owned = self._read_record()

    @property
    def record(self) -> Path:
        return self.path / record_name(self.command)

    def _read_record(self) -> set[str]:
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as err:
            raise OutputError(f"{self.command}: unreadable output record {self.record}: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("files"), list):
            raise OutputError(f"{self.command}: malformed output record {self.record}; delete it or choose another output folder")
        return {str(name) for name in data["files"]}

    def owns(self, rel: str) -> bool:
        """Whether ``rel`` (a path relative to the folder) is recorded, itself or under a claimed folder."""
        rel = Path(rel).as_posix()
        return rel in self.owned or any(rel.startswith(f"{name}/") for name in self.owned)

    def claim(self, *rels: str) -> list[Path]:
        """Make the files ``rels`` (relative paths) this command's; returns their full paths.

        Raises:
            OutputError: one exists, is not recorded and ``force`` is off; or one is a symbolic
                link (writing would follow it out of the folder).
        """
        fresh = []
        for rel in rels:
            target = self.path / rel
            if target.is_symlink():
                raise OutputError(f"{self.command}: {target} is a symbolic link; refusing to write through it")
            if not self.owns(rel):
                if target.exists() and not self.force:
                    raise OutputError(
                        f"{self.command}: {target} exists and was not written by {self.command}; {self.advice}"
                    )
                fresh.append(Path(rel).as_posix())
        if fresh:
            self.owned.update(fresh)
            self._write_record()
        return [self.path / rel for rel in rels]

    def claim_folder(self, rel: str) -> Path:
        """Make the sub-folder ``rel`` and everything under it this command's; returns its path
        (the caller creates it when it writes there).

        Raises:
            OutputError: it exists (as anything but an empty folder), is not recorded and
                ``force`` is off.
        """
        target = self.path / rel
        if target.is_symlink():
            raise OutputError(f"{self.command}: {target} is a symbolic link; refusing to write through it")
        if not self.owns(rel):
            occupied = target.exists() and (not target.is_dir() or any(target.iterdir()))
            if occupied and not self.force:
                raise OutputError(
                    f"{self.command}: {target} exists and was not written by {self.command}; {self.advice}"
                )
            self.owned.add(Path(rel).as_posix())
            self._write_record()
        return target  # not created here: a command that stops before writing leaves no empty folder

    def clear(self) -> list[Path]:
        """Delete every recorded output (before a ``--force`` rewrite); returns what was deleted.

        A later write then cannot leave an earlier output beside the new ones.
        """
        removed = []
        for rel in sorted(self.owned):
            target = self.path / rel
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            else:
                continue
            removed.append(target)
        self.owned = set()
        if self.record.exists():
            self._write_record()
        return removed

    def _write_record(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.record, {"command": self.command, "files": sorted(self.owned)})


def check_output_file(path: str | Path, command: str, force: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """A single output file: refuse an existing one without ``force``, and any input's own path.

    Raises:
        OutputError: ``path`` exists (and ``force`` is off), is a folder, or is one of ``inputs``.
    """
    path = Path(path)
    for source in inputs:
        if is_inside(path, source) or is_inside(source, path):
            raise OutputError(f"{command}: output {path} is the input {source}; choose another output")
    if path.is_dir():
        raise OutputError(f"{command}: output {path} is a folder; name a file")
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputError(f"{command}: {path} exists; pass --force to overwrite it")
    return path


# --------------------------------------------------------------------------- bounded input files

# Text inputs (video lists, grid files) larger than this are refused: the largest public list
# (Kinetics-700's training list) is about 30 MB.
MAX_TEXT_INPUT_BYTES = 256 * 2**20


def check_regular_file(path: str | Path, what: str) -> os.stat_result:
    """``path``'s status if it is a regular file (links followed), else one error naming it.

    A device (``/dev/zero``), a FIFO or a socket would be read forever or block; a folder is
    named as one.

    Raises:
        FileNotFoundError: it does not exist (or is a broken link).
        InputFileError: it is not a regular file.
    """
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        broken = " (a broken symbolic link)" if path.is_symlink() else ""
        raise FileNotFoundError(f"{what} {path} does not exist{broken}") from None
    except OSError as err:
        raise InputFileError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if stat.S_ISDIR(status.st_mode):
        raise InputFileError(f"{what} {path} is a directory, not a file")
    if not stat.S_ISREG(status.st_mode):
        kind = "FIFO" if stat.S_ISFIFO(status.st_mode) else "socket" if stat.S_ISSOCK(status.st_mode) else "device"
        raise InputFileError(f"{what} {path} is a {kind}, not a regular file")
    return status


def read_bounded(path: str | Path, what: str, limit: int = MAX_TEXT_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes.

    Raises:
        FileNotFoundError / InputFileError: see :func:`check_regular_file`; or it is larger
            than ``limit`` (also when it grows past it while being read).
    """
    status = check_regular_file(path, what)
    too_big = InputFileError(f"{what} {path} is larger than {limit // 2**20} MiB; is it the right file?")
    if status.st_size > limit:
        raise too_big
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise InputFileError(f"{what} {path} cannot be read: {err.strerror or err}") from None
    if len(data) > limit:
        raise too_big
    return data


def claim_file(path: str | Path, command: str, force: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """One output file at a path the user chose, claimed in its folder's record (see
    :class:`OutputDir`): an existing file that ``command`` did not write is refused unless
    ``force``."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{command}: output {path} is a folder; name a file")
    for source in inputs:
        if is_inside(path, source):
            raise OutputError(f"{command}: output {path} is the input {source}; choose another output")
    return OutputDir(path.parent, command, force=force).claim(path.name)[0]
