"""What every command shares: logging set-up, one-line errors and exit status.

A command's ``main`` calls :func:`run_command`; errors the user can act on (a bad setting, a
missing or unreadable file, a refused checkpoint, a busy run directory) end the process with
one ``error: ...`` line on stderr and exit status 2, never a traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import NoReturn, TypeVar

from adamae_rl.data.loader import DataError
from adamae_rl.utils.rundir import RunDirBusyError

T = TypeVar("T")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class RunError(RuntimeError):
    """A run stopped for a reason the user must see (non-finite loss, wrong resume, ...)."""


# Errors that describe the user's input or environment rather than a bug.
# ImportError: an optional extra that is not installed (its message says which).
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, KeyError, OSError, ImportError, RunError, DataError, RunDirBusyError,
)


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
    except USER_ERRORS as err:
        print(f"error: {error_line(err)}", file=sys.stderr)
        raise SystemExit(2) from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the commands' error style: one ``error:`` line and a pointer to ``--help``."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
