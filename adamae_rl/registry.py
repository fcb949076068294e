"""One registry mechanism for every plug-in kind: policies, model presets, objectives, data sources.

A registry maps names to factories. Factories arrive three ways: the package's own built-ins and
a user's ``@register_*("name")`` decorator (imported through ``imports=[module]``), or an
installed package's entry point in the registry's group (entry-point name = registered name),
loaded the first time a name is not found or the names are listed. A name taken twice by
different objects is an error; an unknown name lists the known ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from adamae_rl.errors import ConfigError, UserError

log = logging.getLogger("adamae_rl.registry")

F = TypeVar("F", bound=Callable[..., Any])


class UnknownNameError(UserError, ValueError):
    """A name that no built-in, decorated plug-in or entry point provides."""


class Registry:
    """Names -> factories for one plug-in kind.

    Args:
        kind: what the names are, for messages ("policy", "model preset", ...).
        group: the entry-point group third-party packages publish under.
        error: the exception class raised for unknown names (a ``ValueError`` subclass).
    """

    def __init__(self, kind: str, group: str, error: type[ValueError] = UnknownNameError) -> None:
        self.kind, self.group, self.error = kind, group, error
        self._factories: dict[str, Callable[..., Any]] = {}
        self._entry_points_loaded = False

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator: make ``factory`` available as ``name``; a different holder is an error."""

        def decorator(factory: F) -> F:
            existing = self._factories.get(name)
            if existing is not None and existing is not factory:
                raise ConfigError(
                    f"{self.kind} name {name!r} is already registered to {_qualname(existing)}; "
                    f"cannot register {_qualname(factory)}"
                )
            self._factories[name] = factory
            return factory

        return decorator

    def unregister(self, name: str) -> None:
        """Remove a name (for tests and interactive sessions)."""
        self._factories.pop(name, None)

    def names(self) -> list[str]:
        """Every name: built-ins, decorated plug-ins and installed entry points."""
        self._load_entry_points()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``; the registry's error lists the known names."""
        if name not in self._factories:
            self._load_entry_points()
        if name not in self._factories:
            plural = "policies" if self.kind == "policy" else f"{self.kind}s"
            raise self.error(f"unknown {self.kind} {name!r}; known {plural}: {', '.join(self.names())}")
        return self._factories[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def reload_entry_points(self) -> None:
        """Look at the installed entry points again (after installing a package in-process)."""
        self._entry_points_loaded = False

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.group):
            if ep.name in self._factories:
                continue
            try:
                self._factories[ep.name] = ep.load()
            except Exception as err:  # one broken plugin must not hide every other one
                log.warning("skipping %s entry point %r (%s): %s", self.kind, ep.name, ep.value, err)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
