"""Policy registry: built-ins, ``@register_policy`` plugins, entry points and ``_target_`` configs.

A policy factory (usually the class) is called with keyword arguments. The geometry comes from
the environment: ``grid``, ``mask_ratio``, ``embed_dim`` and ``patch_dim``; a factory receives
those of them that its signature names (or all, if it takes ``**kwargs``), plus any user
options. Third-party packages publish policies under the entry-point group
``adamae_rl.policies`` (entry-point name = policy name).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

from adamae_rl.errors import ConfigError
from adamae_rl.registry import Registry, UnknownNameError
from adamae_rl.utils.signature import signature_problems

ENTRY_POINT_GROUP = "adamae_rl.policies"
GEOMETRY_KEYS = ("grid", "mask_ratio", "embed_dim", "patch_dim")


class UnknownPolicyError(UnknownNameError):
    """Raised for a policy name that no registry, entry point or import path provides."""


POLICIES = Registry("policy", ENTRY_POINT_GROUP, UnknownPolicyError)


def register_policy(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class/factory decorator: make a policy available as ``policy=name``.

    Raises ValueError if another object already holds the name.
    """
    return POLICIES.register(name)


def unregister_policy(name: str) -> None:
    """Remove a registered policy (for tests and interactive sessions)."""
    POLICIES.unregister(name)


def list_policies() -> list[str]:
    """Names of every policy: built-ins, decorated plugins and installed entry points."""
    return POLICIES.names()


def get_policy_factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``; UnknownPolicyError lists the known names."""
    return POLICIES.get(name)


def resolve_factory(
    spec: str | Mapping[str, Any], allowed_targets: Collection[str] | None = None
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """Turn a policy spec into ``(factory, options)``.

    ``spec`` is a registered name, or a mapping with ``name`` (registered) or ``_target_``
    (import path ``package.module.Class``) plus options. A ``_target_`` must name a
    :class:`~adamae_rl.policies.base.MaskingPolicy` subclass.

    Args:
        allowed_targets: ``None`` when the spec is the user's own configuration; otherwise
            (a spec read from a file, such as a checkpoint) the ``_target_`` paths the user
            allowed. A ``_target_`` outside it is refused before anything is imported.
    """
    if isinstance(spec, str):
        return get_policy_factory(spec), {}
    options = {k: v for k, v in dict(spec).items() if k not in ("name", "_target_")}
    target = spec.get("_target_")
    if target:
        target = str(target)
        if allowed_targets is not None and target not in set(allowed_targets):
            raise UnknownPolicyError(
                f"policy _target_ {target!r} comes from a file and was not allowed; nothing was imported. "
                f"If you trust it, allow it explicitly (--allow-target {target})"
            )
        return import_policy_class(target), options
    if spec.get("name"):
        return get_policy_factory(str(spec["name"])), options
    raise UnknownPolicyError("a policy config needs 'name' or '_target_'")


def build_policy(
    spec: str | Mapping[str, Any],
    geometry: Mapping[str, Any],
    allowed_targets: Collection[str] | None = None,
    **options: Any,
) -> Any:
    """Instantiate a policy from a spec and the environment's geometry (see module docstring)."""
    factory, spec_options = resolve_factory(spec, allowed_targets)
    kwargs = {**_accepted(factory, geometry), **spec_options, **options}
    problems = signature_problems(factory, {**spec_options, **options}, "policy.", skip=GEOMETRY_KEYS)
    if problems:
        raise ConfigError(f"policy {_display_name(spec)!r}: " + "; ".join(problems))
    return factory(**kwargs)


def import_policy_class(path: str) -> type:
    """Import ``package.module.Class`` and check that it is a ``MaskingPolicy`` subclass.

    The check happens before the class is ever called, so a path to any other callable (for
    example ``os.system``) is refused without running it.
    """
    from adamae_rl.policies.base import MaskingPolicy  # here: base imports distributions, not the registry

    obj = import_object(path)
    if not (isinstance(obj, type) and issubclass(obj, MaskingPolicy)):
        raise UnknownPolicyError(f"policy _target_ {path!r} is not a MaskingPolicy subclass; refusing to call it")
    return obj


def import_object(path: str) -> Any:
    """Import ``package.module.Object`` (or ``package.module:Object``)."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        raise UnknownPolicyError(f"_target_ {path!r} is not an import path like 'package.module.Class'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise UnknownPolicyError(f"cannot import policy _target_ {path!r}: {err}") from err


def _display_name(spec: str | Mapping[str, Any]) -> str:
    if isinstance(spec, str):
        return spec
    return str(spec.get("_target_") or spec.get("name"))


def _accepted(factory: Callable[..., Any], geometry: Mapping[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return dict(geometry)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(geometry)
    return {k: v for k, v in geometry.items() if k in params}
