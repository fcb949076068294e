"""This toolkit's own weight files, and training-run checkpoints as a source.

A converted file (``python -m adamae_rl.convert SRC out.pt``) is one ``torch.save`` dict of
tensors and plain values (loadable with ``weights_only=True``)::

    {"format": "adamae_rl.weights", "version": 1, "source": str,
     "config": {MAEConfig fields the source knows}, "model": {VideoMAE state dict},
     "policy": {AdaptiveMasking state dict} | None, "policy_config": {...} | None,
     "classifier": {fc_norm.*, head.*} | None, "final_norm": bool, "notes": [str]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adamae_rl.interop.weights import Weights, WeightsError, infer_config, merge_config
from adamae_rl.schema import RUN_MODEL_KEYS
from adamae_rl.utils.checkpoint import atomic_save

FORMAT = "adamae_rl.weights"
VERSION = 1


def is_native(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == FORMAT


def is_run_checkpoint(obj: Any) -> bool:
    return isinstance(obj, dict) and {"config", "model", "step"} <= set(obj)


def read_native(obj: dict[str, Any], source: str) -> Weights:
    if obj.get("version") != VERSION:
        raise WeightsError(f"{source}: {FORMAT} version {obj.get('version')!r}; this release reads version {VERSION}")
    model = dict(obj["model"])
    config = merge_config(infer_config(model), dict(obj.get("config") or {}), source)
    return Weights(
        model=model, config=config, policy=obj.get("policy"), policy_config=obj.get("policy_config"),
        classifier=obj.get("classifier"), final_norm=bool(obj.get("final_norm", True)), source=source,
        notes=list(obj.get("notes") or []),
    )


def preset_fields(preset: Any) -> dict[str, Any]:
    """The ``MAEConfig`` fields of a built-in preset (empty for a plug-in or no preset)."""
    from adamae_rl.models.presets import PRESETS

    return dict(PRESETS.get(preset, {})) if isinstance(preset, str) else {}


def read_run_checkpoint(obj: dict[str, Any], source: str) -> Weights:
    """A training run's ``checkpoints/*.pt``: the MAE, and the sampler when the policy is adaptive."""
    run_cfg = obj["config"]
    stored = dict(run_cfg.get("model") or {})
    model_cfg = {k: v for k, v in stored.items() if k not in RUN_MODEL_KEYS}
    # The run's config names a preset and only the fields it overrode: the preset's own fields
    # (heads, above all, which no tensor shape reveals) are part of what the weights were trained as.
    model_cfg = {**preset_fields(stored.get("preset")), **model_cfg}
    model = dict(obj["model"])
    weights = Weights(model=model, config=merge_config(infer_config(model), model_cfg, source), source=source)
    policy_cfg = dict(run_cfg.get("policy") or {})
    if obj.get("policy") is not None and policy_cfg.get("name") == "adaptive":
        # Options (heads, eps) are not recorded apart from the run's config; shapes are still checked.
        weights.policy = dict(obj["policy"])
    return weights


def write_native(weights: Weights, path: str | Path) -> Path:
    """Write ``weights`` as this toolkit's file (atomically)."""
    state = {
        "format": FORMAT, "version": VERSION, "source": weights.source, "config": dict(weights.config),
        "model": weights.model, "policy": weights.policy, "policy_config": weights.policy_config,
        "classifier": weights.classifier, "final_norm": weights.final_norm, "notes": list(weights.notes),
    }
    return atomic_save(state, path)
