"""Check keyword options against a callable's signature (names and annotated types), with pydantic."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model


def describe_error(error: Mapping[str, Any], prefix: str = "") -> str:
    """One pydantic error as ``key: problem (got value)``."""
    key = prefix + ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown setting (got {error['input']!r}); check the spelling"
    if error["type"] == "missing":
        return f"{key}: missing"
    if error["type"] == "value_error":  # our own validators already name the value
        return f"{key}: {str(error['msg']).removeprefix('Value error, ')}"
    return f"{key}: {error['msg'][:1].lower()}{error['msg'][1:]} (got {error['input']!r})"


def signature_problems(
    factory: Callable[..., Any], options: Mapping[str, Any], prefix: str = "", skip: Collection[str] = ()
) -> list[str]:
    """Problems with ``options`` for ``factory``: unknown names, and values of the wrong type
    where the signature annotates one. A factory taking ``**kwargs`` accepts any name."""
    try:
        signature = inspect.signature(factory)
        hints = typing.get_type_hints(factory.__init__ if isinstance(factory, type) else factory)
    except (TypeError, ValueError, NameError):
        return []
    params = {n: p for n, p in signature.parameters.items() if n not in skip and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    problems = []
    unknown = sorted(set(options) - set(params) - set(skip))
    if unknown and not open_ended:
        problems += [f"{prefix}{k}: unknown option (got {options[k]!r}); options: {', '.join(params) or 'none'}" for k in unknown]
    spec = {n: (hints.get(n, Any), ... if p.default is p.empty else p.default) for n, p in params.items() if n in options}
    if spec:
        model = create_model("Options", __config__=ConfigDict(allow_inf_nan=False, arbitrary_types_allowed=True), **spec)
        try:
            model.model_validate({k: options[k] for k in spec})
        except ValidationError as err:
            problems += [describe_error(e, prefix) for e in err.errors(include_url=False)]
    return problems
