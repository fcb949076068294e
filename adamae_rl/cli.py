"""What every command shares: logging set-up, one-line errors and exit status.

A command's ``main`` calls :func:`run_command`; errors the user can act on end the process with
one ``error: ...`` line on stderr and exit status 2, never a traceback. They are the toolkit's
:class:`~adamae_rl.errors.UserError` types (a bad setting, an unusable file, a refused
checkpoint, a busy run directory, a refused output), an optional extra that is not installed,
and the operating system's verdict on a file the user named (missing, not permitted, a folder
where a file was expected, a full disk). Anything else -- a plain ``ValueError`` or
``KeyError`` included -- is a bug and keeps its traceback. ``--debug`` (or
``ADAMAE_RL_DEBUG=1``) shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

from adamae_rl.errors import UserError


T = TypeVar("T")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
DEBUG_ENV = "ADAMAE_RL_DEBUG"
DEBUG_FLAG = "--debug"


class RunError(UserError, RuntimeError):
    """A run stopped for a reason the user must see (non-finite loss, wrong resume, ...)."""


# The operating system's answer about a path the user named; the message names path and reason.
USER_OS_ERRORS: tuple[type[OSError], ...] = (
    FileNotFoundError, FileExistsError, PermissionError, IsADirectoryError, NotADirectoryError,
)
# A file system that cannot take the output: the user's environment, not a bug.
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})

_debug = False


def enable_debug(on: bool = True) -> None:
    """Show tracebacks for every error (``--debug``)."""
    global _debug
    _debug = on


def debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def strip_debug_flag(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--debug``, which turns debugging on (for commands parsed by Hydra)."""
    if DEBUG_FLAG in argv:
        enable_debug()
    return [a for a in argv if a != DEBUG_FLAG]


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` describes the user's input or environment rather than a bug."""
    if isinstance(err, (UserError, ImportError, *USER_OS_ERRORS)):
        return True
    return isinstance(err, OSError) and err.errno in SPACE_ERRNOS


def setup_logging(level: int = logging.INFO) -> None:
    """Console logging in one format for every command; TorchRL's chatter kept at warnings."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    logging.getLogger("torchrl").setLevel(logging.WARNING)


def error_line(err: BaseException) -> str:
    """The one line to show for a user error."""
    if isinstance(err, KeyError) and err.args:
        message = str(err.args[0])
    elif isinstance(err, OSError) and err.strerror:  # raised by the OS: name the file and the reason
        message = f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    else:
        message = str(err)
    if "Traceback" in message:  # re-raised from a loader worker: keep its final line
        message = message.strip().splitlines()[-1]
    return " ".join(message.split())  # exactly one line


def run_command(body: Callable[[], T], setup: bool = True) -> T:
    """Run a command's body; a user error becomes ``error: ...`` on stderr and exit status 2."""
    if setup:
        setup_logging()
    try:
        return body()
    except Exception as err:
        if not is_user_error(err) or debug_enabled():
            raise
        print(f"error: {error_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the commands' error style: one ``error:`` line and a pointer to ``--help``.

    Every command gets ``--debug`` (tracebacks for every error).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help="show the traceback of any error")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        parsed, rest = super().parse_known_args(args, namespace)
        if getattr(parsed, "debug", False):
            enable_debug()
        return parsed, rest

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
