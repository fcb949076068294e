"""Build-time generation of the training configuration's reference page.

MkDocs runs this hook while it builds the site: the page ``reference/config.md`` holds a marker
that is replaced by tables generated from the schema (``adamae_rl.schema``), the shipped config
tree (``adamae_rl/configs``: the defaults and the comments next to them) and the plug-in
registries (policy and objective options, from their factories' signatures). The page therefore
lists whatever keys the installed package checks, and cannot fall behind it.

``render()`` is importable on its own, so that a test can check the page against the schema.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path
from typing import Any

import yaml

MARKER = "<!-- config-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: put the generated tables where the page has the marker."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())


# --- the shipped config tree: defaults and the comments that explain them ----------------------


def _config_dir() -> Path:
    import adamae_rl

    return Path(adamae_rl.__file__).parent / "configs"


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text()) or {}
    data.pop("hydra", None)
    data.pop("defaults", None)
    return data


def _comments(path: Path) -> dict[str, str]:
    """Dotted key -> the comment block above it and its inline comment, joined."""
    out: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.rstrip()
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"([A-Za-z_][A-Za-z0-9_]*):(.*)$", stripped)
        if not match:
            pending = []
            continue
        key, rest = match.groups()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        inline = rest.split(" #", 1)[1].strip() if " #" in rest else ""
        text = " ".join(pending + ([inline] if inline else []))
        if text:
            out[dotted] = text
        pending = []
        stack.append((indent, key))
    return out


def _default_groups() -> dict[str, str]:
    """The group choices of ``config.yaml``'s defaults list (``policy: adaptive``, ...)."""
    raw = yaml.safe_load((_config_dir() / "config.yaml").read_text()) or {}
    groups = {}
    for item in raw.get("defaults", []):
        if isinstance(item, dict):
            for key, value in item.items():
                if value is not None:
                    groups[key.replace("optional ", "")] = value
    return groups


# --- types and ranges from pydantic fields ------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, tuple, dict):
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{origin.__name__}[{inner}]" if inner else origin.__name__
    if annotation is Any:
        return "any"
    return getattr(annotation, "__name__", str(annotation))


_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"), ("min_length", "length ≥"))


def _range(info: Any) -> str:
    parts = []
    items = list(info.metadata)
    for arg in typing.get_args(info.annotation):  # bounds inside Annotated members of a union
        if typing.get_origin(arg) is typing.Annotated:
            items += list(typing.get_args(arg)[1:])
    for item in items:
        for attr, symbol in _BOUNDS:
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{symbol} {value}")
        for inner in getattr(item, "metadata", []):  # a FieldInfo nested in Annotated
            for attr, symbol in _BOUNDS:
                value = getattr(inner, attr, None)
                if value is not None:
                    parts.append(f"{symbol} {value}")
    return ", ".join(dict.fromkeys(parts))


def _fmt(value: Any) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str) and not value:
        return "`''`"
    return f"`{value}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section_rows(prefix: str, model: Any, defaults: dict[str, Any], comments: dict[str, str],
                  groups: dict[str, str] | None = None) -> list[str]:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    groups = groups or {}
    rows = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = [a for a in (annotation, *typing.get_args(annotation))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if name in groups:  # a config group: its keys are listed in the group's own table
            rows.append(f"| `{prefix}{name}` | config group | `{groups[name]}` | | | its keys: section `{name}` below |")
            continue
        if nested:  # a section of its own, listed in its own table
            continue
        if name in defaults:
            default = _fmt(defaults[name])
        elif info.default is not PydanticUndefined:
            default = _fmt(info.default)
        elif info.default_factory is not None:
            default = _fmt(info.default_factory())
        else:
            default = "required"
        resumable = "yes" if (info.json_schema_extra or {}).get("resumable") else ""
        rows.append(
            f"| `{prefix}{name}` | {_cell(_type_name(annotation))} | {_cell(default)} | {_cell(_range(info))} "
            f"| {resumable} | {_cell(comments.get(prefix + name, ''))} |"
        )
    return rows


_HEADER = ["| key | type | default | range | resumable | meaning |", "|---|---|---|---|---|---|"]


def _signature_rows(prefix: str, factory: Any, defaults: dict[str, Any], comments: dict[str, str],
                    skip: tuple[str, ...]) -> list[str]:
    rows = []
    try:
        target = factory.__init__ if isinstance(factory, type) else factory
        hints = typing.get_type_hints(target)
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError, NameError):
        return rows
    for p in params:
        if p.name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        kind = _type_name(hints[p.name]) if p.name in hints else "any"
        default = defaults.get(p.name, p.default)
        default_text = "required" if default is inspect.Parameter.empty else _fmt(default)
        rows.append(f"| `{prefix}{p.name}` | {_cell(kind)} | {_cell(default_text)} | | | "
                    f"{_cell(comments.get(p.name, ''))} |")
    return rows


def render() -> str:
    """The reference's tables as Markdown."""
    from adamae_rl import schema
    from adamae_rl.objectives import OBJECTIVES
    from adamae_rl.policies.registry import GEOMETRY_KEYS, POLICIES

    root = _config_dir()
    groups = _default_groups()
    top = _yaml(root / "config.yaml")
    top_comments = _comments(root / "config.yaml")
    out: list[str] = []

    def table(title: str, intro: str, rows: list[str]) -> None:
        out.extend([f"## {title}", "", intro, "", *_HEADER, *rows, ""])

    table("Top level", "Keys at the top of the config (`config.yaml`).",
          _section_rows("", schema.TrainConfig, top, top_comments, groups))
    for section in ("trainer", "optim"):
        model = schema.TrainConfig.model_fields[section].annotation
        comments = {k[len(section) + 1:]: v for k, v in top_comments.items() if k.startswith(section + ".")}
        table(f"`{section}`", f"`{section}.*` (defaults from `config.yaml`).",
              _section_rows(f"{section}.", model, top.get(section, {}), {f"{section}.{k}": v for k, v in comments.items()}))

    model_file = root / "model" / f"{groups.get('model', 'tiny')}.yaml"
    model_comments = {f"model.{k}": v for k, v in _comments(model_file).items()}
    table("`model`", f"`model.*`: the preset and any field of its `MAEConfig`. Defaults shown are those of "
          f"`model={model_file.stem}` (the default); a blank field keeps the preset's value. Presets: "
          + ", ".join(f"`{p.stem}`" for p in sorted((root / "model").glob("*.yaml"))) + ".",
          _section_rows("model.", schema.ModelConfig, _yaml(model_file), model_comments))

    for name, section in schema.DATA_SECTIONS.items():
        path = root / "data" / f"{name}.yaml"
        defaults = _yaml(path) if path.exists() else {}
        comments = {f"data.{k}": v for k, v in _comments(path).items()} if path.exists() else {}
        table(f"`data={name}`", f"`data.*` when `data={name}`.", _section_rows("data.", section, defaults, comments))

    mask_rows = []
    for path in sorted((root / "decoder_mask").glob("*.yaml")):
        comments = {f"decoder_mask.{k}": v for k, v in _comments(path).items()}
        mask_rows += [r.replace("| `decoder_mask.", f"| `decoder_mask={path.stem}`: `decoder_mask.", 1)
                      for r in _section_rows("decoder_mask.", schema.DecoderMaskConfig, _yaml(path), comments)]
    table("`decoder_mask`", "Decoder masking (unset by default: the decoder rebuilds every masked token).", mask_rows)

    logger_dir = root / "logger"
    logger_comments = {f"logger.{k}": v for path in sorted(logger_dir.glob("*.yaml")) for k, v in _comments(path).items()
                       if k != "name"}
    table("`logger`", "Where the metrics go besides `metrics.jsonl`: `logger=` "
          + " | ".join(f"`{p.stem}`" for p in sorted(logger_dir.glob("*.yaml")))
          + f" (default `{groups.get('logger', 'tensorboard')}`); `project`, `entity` and `mode` are read by `wandb`.",
          _section_rows("logger.", schema.LoggerConfig, {}, logger_comments))

    for group, registry, skip in (("policy", POLICIES, GEOMETRY_KEYS), ("objective", OBJECTIVES, ("policy",))):
        out.extend([f"## `{group}`", "",
                    f"`{group}=NAME` picks a registered {group}; its options are the factory's keyword arguments, "
                    f"checked against its signature before the run starts. Defaults are those of "
                    f"`configs/{group}/NAME.yaml` where it exists, else the factory's. Options without a config "
                    f"file are given as `+{group}.OPTION=VALUE`.", ""])
        for name in registry.names():
            path = root / group / f"{name}.yaml"
            defaults = _yaml(path) if path.exists() else {}
            comments = _comments(path) if path.exists() else {}
            rows = _signature_rows(f"{group}.", registry.get(name), defaults, comments, skip)
            out.extend([f"### `{group}={name}`", ""])
            out.extend([*_HEADER, *rows, ""] if rows else ["No options.", ""])
        for path in sorted((root / group).glob("*.yaml")):
            values = _yaml(path)
            if path.stem in registry.names() or path.stem == "registered":
                continue
            comments = _comments(path)
            out.extend([f"### `{group}={path.stem}`", "",
                        f"A config file over `{group}.name={values.get('name')}`: these values, the rest as above.", "",
                        "| key | value | meaning |", "|---|---|---|"])
            out.extend(f"| `{group}.{k}` | {_cell(_fmt(v))} | {_cell(comments.get(k, ''))} |" for k, v in values.items())
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render())
