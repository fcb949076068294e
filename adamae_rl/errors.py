"""The toolkit's error types for problems the user can fix.

A command reports a :class:`UserError` as one ``error: ...`` line with exit status 2
(:func:`adamae_rl.cli.run_command`); anything else is a bug and keeps its traceback. The
subclasses also derive from the built-in type that the same raise used before (``ValueError``,
``OSError``), so library callers that catch those keep working.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, settings or environment; the message says which."""


class ConfigError(UserError, ValueError):
    """A setting is unknown, of the wrong type or out of range."""


class InputFileError(UserError, ValueError):
    """A file given to a command cannot be used as what it was given as (list, mask, weights)."""


class OutputError(UserError, OSError):
    """A command refused to write, or could not write, its output (the message names the path)."""

    def __str__(self) -> str:  # OSError's own __str__ would prefix "[Errno ...]"
        return str(self.args[0]) if self.args else ""


class ResourceLimitError(UserError, ValueError):
    """A request that would exceed a documented bound on memory or size."""
