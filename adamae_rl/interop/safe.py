"""Loading checkpoint files without running code from them.

``torch.load`` unpickles. A ``.pth`` file from the internet can carry a pickled object whose
reconstruction calls any function (``os.system``, ...). Loading here always uses
``weights_only=True``: only tensors, plain containers and numbers, plus an explicit allow-list
of classes. The one class on that list is ``argparse.Namespace``, which official VideoMAE /
VideoMAE V2 / AdaMAE checkpoints carry as ``args`` (their training options); it is turned into a
plain dict at once. Anything else is refused before it is built.
"""

from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from adamae_rl.errors import InputFileError, UserError
from adamae_rl.utils.files import check_regular_file

# Classes that may be rebuilt from a checkpoint, besides what weights_only allows anyway.
ALLOWED_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


class UnsafeCheckpointError(UserError, ValueError):
    """A checkpoint holds a pickled object outside the allow-list; nothing of it was run."""


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with ``argparse.Namespace`` allowed.

    Returns:
        the file's object, with every ``argparse.Namespace`` replaced by a plain dict.
    Raises:
        FileNotFoundError: no such file.
        UnsafeCheckpointError: the file pickles an object of another class (named in the message).
        ValueError: the file is not a readable torch checkpoint.
    """
    path = Path(path)
    check_regular_file(path, "checkpoint")  # a FIFO or a device would block or never end
    if _is_text(path):  # torch files start with a zip or a binary pickle header, never with text
        raise InputFileError(f"{path} is a text file, not a torch checkpoint")
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        opcode = re.search(r"Unsupported operand \d+", str(err))
        if found is None and opcode:  # bytes that are no pickle at all
            raise InputFileError(f"{path} is not a readable torch checkpoint (not a pickle: {opcode.group(0)})") from None
        what = found.group(1) if found else "object of a class outside the allow-list"
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it holds a pickled {what}, which is neither a tensor, a plain "
            f"value nor one of the allowed classes ({', '.join(_name(c) for c in ALLOWED_GLOBALS)}); "
            "loading it could run code. Nothing from the file was executed."
        ) from None
    except Exception as err:  # malformed bytes raise anything (IndexError, struct.error, ...): all are "not a checkpoint"
        raise InputFileError(f"{path} is not a readable torch checkpoint ({type(err).__name__}: {_last_line(err)})") from None
    return _plain(obj)


def _is_text(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(512)
    return bool(head) and all(32 <= b < 127 or b in b"\t\r\n" for b in head)


def _last_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1][:200] if lines else type(err).__name__


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _plain(obj: Any) -> Any:
    """Namespaces -> dicts, recursively through dicts, lists and tuples."""
    if isinstance(obj, argparse.Namespace):
        return {k: _plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj
