"""Atomic, resumable checkpoints.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it
loads with ``torch.load(weights_only=True)``: loading one never runs code. It is written to a
temporary file in the same folder, flushed to disk, then renamed over the target: a crash or kill
at any moment leaves either the old or the new file, never a torn one. Temporary files that a
killed writer left behind are removed by :func:`remove_stale_temporaries`.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adamae_rl.errors import UserError

log = logging.getLogger("adamae_rl.checkpoint")

PERIODIC = re.compile(r"^step_(\d+)\.pt$")
TEMPORARY = re.compile(r"^\..+\.tmp\d*$")  # ".last.pt.tmp1234", ".config.yaml.tmp"
SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class CheckpointError(UserError, ValueError):
    """A checkpoint cannot be read or written; the message names the file and the reason."""


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` through a temporary file and an atomic rename.

    Raises:
        CheckpointError: the file system refused the write (full disk, quota, file size
            limit); ``path`` still holds what it held before.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        space = _space_error(err)
        if space is None:
            raise
        kept = "still holds the previous checkpoint" if path.exists() else "was not written"
        raise CheckpointError(f"cannot write checkpoint {path}: {space}; {path.name} {kept}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _space_error(err: BaseException) -> str | None:
    """The file-system reason behind a failed write if it is a space problem, else None.

    torch's zip writer turns the ``OSError`` of a full disk into a ``RuntimeError`` whose
    context still holds the original error, so the whole chain is searched.
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in SPACE_ERRNOS:
            return f"{os.strerror(seen.errno).lower()} (errno {errno.errorcode[seen.errno]})"
        seen = seen.__cause__ or seen.__context__
    return None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder``; returns them.

    Call it only while holding the run directory's lock: then no live writer owns one.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if TEMPORARY.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted write in %s", len(removed), folder)
    return removed


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable (POSIX); harmless where directories cannot be opened.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is empty, torn, not a checkpoint, or holds objects other than
            tensors and plain values (refused: unpickling them could run code).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (a write that never finished?)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's own message suggests weights_only=False, i.e. running the file's code: never
        # pass it on. It names a refused GLOBAL when the file holds objects; else it is torn.
        if "GLOBAL" not in str(err):
            raise CheckpointError(f"checkpoint {path} is torn or not a checkpoint (cannot be read)") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        raise CheckpointError(
            f"checkpoint {path} holds objects other than tensors and plain values"
            f"{f' ({found.group(1)})' if found else ''}; refusing to load them, since unpickling them could run code"
        ) from None
    except Exception:  # noqa: BLE001 - a torn or foreign file fails in many ways inside torch.load
        raise CheckpointError(f"checkpoint {path} is torn or not a checkpoint (cannot be read)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a checkpoint dict (found {type(state).__name__})")
    return state


def readable_checkpoints(folder: str | Path) -> list[Path]:
    """Candidates to resume from, best first: ``last.pt``, then periodic ones, newest first."""
    folder = Path(folder)
    periodic = sorted(
        ((int(m.group(1)), p) for p in folder.glob("step_*.pt") if (m := PERIODIC.match(p.name))), reverse=True
    )
    last = folder / "last.pt"
    return ([last] if last.exists() else []) + [p for _, p in periodic]


def load_newest(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that loads, with one warning per unreadable one.

    Returns:
        ``(path, state)``, or None when the folder holds no checkpoint at all.
    Raises:
        CheckpointError: checkpoints exist but none of them can be read (each one named).
    """
    problems = []
    for path in readable_checkpoints(folder):
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        for problem in problems:
            log.warning("%s; resuming from %s instead", problem, path.name)
        return path, state
    if problems:
        raise CheckpointError("no readable checkpoint to resume from: " + "; ".join(problems))
    return None


def prune_periodic(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` periodic checkpoints ``step_XXXXXX.pt``."""
    found = sorted(
        (int(m.group(1)), p) for p in Path(folder).glob("step_*.pt") if (m := PERIODIC.match(p.name))
    )
    for _, path in found[: max(len(found) - keep, 0)]:
        path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every RNG the run touches, as tensors and plain values (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_plain(random.getstate()),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    np_state = state["numpy"]
    np.random.set_state(
        ("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["gauss"])
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


def _to_tuple(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value
