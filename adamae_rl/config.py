"""Two small services every entry point needs before a run's config is checked: a Hydra/OmegaConf
node as plain Python values (:func:`plain`), and the user's plug-in modules imported so that their
registered policies, presets, objectives and data sources exist (:func:`import_plugins`).

They live here, below both :mod:`adamae_rl.schema` (which imports plug-ins before checking their
options) and :mod:`adamae_rl.builders` (which builds from a checked config), so that neither of
those two imports the other's internals.
"""

from __future__ import annotations

import importlib
from typing import Any

from adamae_rl.errors import ConfigError


def plain(cfg: Any) -> Any:
    """An OmegaConf node (or anything) as plain dicts/lists, interpolations resolved."""
    from omegaconf import DictConfig, ListConfig, OmegaConf  # a dependency of hydra-core

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def import_plugins(modules: list[str] | tuple[str, ...] | None) -> None:
    """Import user modules so that their ``@register_policy`` (and similar) decorators run.

    Raises:
        ConfigError: a module cannot be imported (``imports: cannot import 'x': ...``).
    """
    for name in modules or []:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"imports: cannot import {name!r}: {err}") from err


__all__ = ["plain", "import_plugins"]
