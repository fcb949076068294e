"""The README stays an overview whose figures lead to dated results; the documentation site builds."""

from __future__ import annotations

import ast
import os
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli import REPO

README = REPO / "README.md"
MAX_README_LINES = 200
QUICK_START = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . && "
    "python -m adamae_rl.train policy=adaptive",
    'python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e ".[dev]" && '
    "python -m pytest -q",
)

# A figure: a decimal, a percentage, a count with a unit of time, size or speed, a ratio or a ± spread.
MEASUREMENT = re.compile(
    r"\d+\.\d+|\d\s*%|\d\s*(?:s|ms|min|h|GB|GiB|MB|MiB|clips/s|×|x)\b|±|\d+\s*(?:steps|seeds|minutes|seconds)\b"
)
# What may hold digits without being a measurement: code spans, link targets, paper identifiers,
# venue years.
NOT_MEASURED = (
    re.compile(r"`[^`]*`"),
    re.compile(r"\]\([^)]*\)"),
    re.compile(r"arXiv \d{4}\.\d{4,5}"),
    re.compile(r"\b(?:CVPR|NeurIPS|ICCV|ICML|ECCV) \d{4}\b"),
)


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def unlinked_measurements(text: str) -> list[str]:
    """Lines that state a figure without a link to a results page."""
    bad = []
    for number, line in prose_lines(text):
        stripped = line
        for pattern in NOT_MEASURED:
            stripped = pattern.sub(" ", stripped)
        if MEASUREMENT.search(stripped) and "docs/results/" not in line:
            bad.append(f"README.md:{number}: {line.strip()}")
    return bad


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail to docs/"


def test_readme_keeps_the_quick_start_commands() -> None:
    readme = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    assert list(QUICK_START) == blocks[:2]
    # CI runs the test command exactly as the README gives it.
    assert QUICK_START[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_every_readme_figure_links_to_a_results_page() -> None:
    assert unlinked_measurements(README.read_text(encoding="utf-8")) == []


def test_the_figure_check_catches_an_unlinked_figure() -> None:
    assert unlinked_measurements("Enrichment reaches 2.14 after 400 steps.\n")
    assert unlinked_measurements("It takes 105 s on two cores.\n")
    assert unlinked_measurements("Top-1 is 64.1% here.\n")
    assert not unlinked_measurements("Enrichment 2.14 ([the default run](docs/results/default-run.md)).\n")
    assert not unlinked_measurements("AdaMAE (CVPR 2023, [arXiv 2211.09120](https://arxiv.org/abs/2211.09120))\n")
    assert not unlinked_measurements("```\nmask_ratio=0.9 took 105 s\n```\n")


def test_readme_links_resolve() -> None:
    readme = README.read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", readme) if not t.startswith("http")]
    missing = [t for t in targets if t and not (REPO / t).exists()]
    assert missing == []


def test_metric_glossary_lists_every_logged_key() -> None:
    glossary = (REPO / "docs" / "reference" / "metrics.md").read_text(encoding="utf-8")
    package = REPO / "adamae_rl"
    logged = set()
    for path in package.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        logged |= set(re.findall(r"[\"']((?:train|eval|data|finetune)/[a-z0-9_]+)[\"']", source))
    # The objectives' terms are logged as train/<term>: the keys of the TensorDicts they return.
    for path in (package / "objectives").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "TensorDict"
                    and node.args and isinstance(node.args[0], ast.Dict)):
                logged |= {f"train/{k.value}" for k in node.args[0].keys if isinstance(k, ast.Constant)}
    # summary.json: the keys that hooks.summarize puts into its dict.
    summarize = next(node for node in ast.walk(ast.parse((package / "training" / "hooks.py").read_text(encoding="utf-8")))
                     if isinstance(node, ast.FunctionDef) and node.name == "summarize")
    summary_keys = set()
    for node in ast.walk(summarize):
        if isinstance(node, ast.Dict):
            summary_keys |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and getattr(node.value, "id", "") == "summary":
            summary_keys.add(node.slice.value)
    assert len(logged) > 10 and len(summary_keys) > 10
    missing = sorted(k for k in logged | summary_keys if f"`{k}`" not in glossary)
    assert missing == [], f"add to docs/reference/metrics.md: {missing}"


def _config_reference():
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "docs" / "hooks" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_keys(model: type, prefix: str = "") -> list[str]:
    """Every dotted key of a schema section: nested sections walked, plug-in sections by name only."""
    import typing

    from pydantic import BaseModel

    from adamae_rl.schema import PluginSection

    keys = []
    for name, info in model.model_fields.items():
        nested = [a for a in (info.annotation, *typing.get_args(info.annotation))
                  if isinstance(a, type) and issubclass(a, BaseModel) and not issubclass(a, PluginSection)]
        keys += schema_keys(nested[0], f"{prefix}{name}.") if nested else [prefix + name]
    return keys


def test_config_reference_lists_every_schema_key() -> None:
    from adamae_rl import schema

    page = _config_reference().render()
    keys = schema_keys(schema.TrainConfig) + [k for section in schema.DATA_SECTIONS.values() for k in schema_keys(section, "data.")]
    assert {"trainer.max_steps", "logger.mode", "data.background", "data.sampling_rate", "decoder_mask.ratio"} <= set(keys)
    missing = [key for key in keys if f"`{key}`" not in page]
    assert missing == []
    assert "| `trainer.max_steps` | int or null | `400` | ≥ 1 | yes |" in page
    assert "### `policy=adaptive`" in page and "`objective.coef`" in page


@pytest.mark.slow
def test_docs_site_builds_strict(tmp_path: Path) -> None:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    page = (tmp_path / "site" / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert "trainer.max_steps" in page  # the generated reference, not the marker
    assert "config-reference" not in page


def test_citation_cites_the_toolkit_and_the_papers_it_implements() -> None:
    import yaml

    citation = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["type"] == "software" and "adamae_rl" in citation["title"]
    version = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(encoding="utf-8"), flags=re.M)
    assert str(citation["version"]) == version.group(1)
    identifiers = {i["value"] for ref in citation["references"] for i in ref.get("identifiers", [])}
    assert {"arXiv:2211.09120", "arXiv:2203.12602"} <= identifiers  # AdaMAE, VideoMAE


def test_api_pages_list_every_public_module_of_their_package() -> None:
    spec = importlib.util.spec_from_file_location("api_modules", REPO / "docs" / "hooks" / "api_modules.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    pages = REPO / "docs" / "reference" / "api"
    listed = {m.group(1) for p in pages.glob("*.md") for m in hook.MARKER.finditer(p.read_text(encoding="utf-8"))}
    packages = {f"adamae_rl.{p.parent.name}" for p in (REPO / "adamae_rl").glob("*/__init__.py")}
    # Command implementations and the config trees are documented by their guides, not here.
    assert packages - listed <= {"adamae_rl.ablation", "adamae_rl.visualization"}
    assert "adamae_rl.models.videomae" in hook.modules("adamae_rl.models")
    assert "adamae_rl.models.attention" in hook.modules("adamae_rl.models")
    assert "adamae_rl.utils.compile" in hook.modules("adamae_rl.utils")
    assert "::: adamae_rl.policies.base" in hook.render("adamae_rl.policies")
