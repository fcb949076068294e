"""Build-time listing of a package's modules on its API page.

An API page holds ``<!-- api-modules: PACKAGE -->``; this MkDocs hook replaces it with one
mkdocstrings block per module of PACKAGE (the package's own docstring first, then each module in
name order), so a module that is added, split or moved appears on its package's page without an
edit here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!-- api-modules: ([\w.]+) -->")
# Modules left off the API pages (none today: the study tools live in the repository's tools/).
EXCLUDED: set[str] = set()


def modules(package: str) -> list[str]:
    """PACKAGE's public modules and subpackages, by dotted name, without the excluded ones."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package} is not a package")
    folder = Path(next(iter(spec.submodule_search_locations)))
    names = []
    for path in sorted(folder.iterdir()):
        name = path.stem if path.suffix == ".py" else path.name if (path / "__init__.py").exists() else None
        if name and not name.startswith("_") and f"{package}.{name}" not in EXCLUDED:
            names.append(f"{package}.{name}")
    return names


def render(package: str) -> str:
    blocks = [f"::: {package}\n    options:\n      members: false\n"]
    for module in modules(package):
        blocks.append(f"## `{module}`\n\n::: {module}\n")
    return "\n".join(blocks)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs hook: expand each marker into its package's module blocks."""
    return MARKER.sub(lambda m: render(m.group(1)), markdown)
