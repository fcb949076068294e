"""Model presets in a registry. The name encodes the width; clip geometry stays a builder argument.

A model factory is called as ``factory(**overrides)`` with :class:`MAEConfig` field overrides
(``img_size``, ``num_frames``, ``decoder_depth``, ...) and returns a :class:`VideoMAE`. Built-ins:
``tiny`` (CPU demos and tests) and VideoMAE's ``vit_s``, ``vit_b``, ``vit_l``. A package adds its
own with ``@register_model("name")`` or under the entry-point group ``adamae_rl.models``; then
``model.preset=name`` selects it from the command line.
"""

from __future__ import annotations

from typing import Any

from adamae_rl.errors import ConfigError
from adamae_rl.models.videomae import MAEConfig, VideoMAE
from adamae_rl.registry import Registry

ENTRY_POINT_GROUP = "adamae_rl.models"

MODELS = Registry("model preset", ENTRY_POINT_GROUP)
register_model = MODELS.register

# Encoder/decoder widths, depths and heads of VideoMAE's ViT-S/B/L; `tiny` is for CPU demos/tests.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        img_size=64, num_frames=16, patch_size=8, tubelet_size=2,
        embed_dim=128, depth=4, num_heads=4,
        decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=2,
    ),
    "vit_s": dict(embed_dim=384, depth=12, num_heads=6, decoder_embed_dim=192, decoder_depth=4, decoder_num_heads=3),
    "vit_b": dict(embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=384, decoder_depth=4, decoder_num_heads=6),
    "vit_l": dict(embed_dim=1024, depth=24, num_heads=16, decoder_embed_dim=512, decoder_depth=4, decoder_num_heads=8),
}


def list_models() -> list[str]:
    """Every model preset: built-ins, decorated plug-ins and installed entry points."""
    return MODELS.names()


def mae_config(preset: str = "tiny", **overrides: Any) -> MAEConfig:
    """Config for a built-in preset with field overrides (e.g. ``img_size=112, decoder_depth=2``)."""
    if preset not in PRESETS:
        MODELS.get(preset)  # an unknown name fails here, listing every registered model
        raise ConfigError(f"model {preset!r} is registered but has no built-in config; built-ins: {', '.join(sorted(PRESETS))}")
    fields = set(MAEConfig.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise ConfigError(f"unknown MAE config field(s) {sorted(unknown)}; known: {sorted(fields)}")
    return MAEConfig(**{**PRESETS[preset], **overrides})


def build_mae(preset: str = "tiny", **overrides: Any) -> VideoMAE:
    """Build the model registered as ``preset`` with config overrides; unknown names list the known ones."""
    return MODELS.get(preset)(**overrides)


@register_model("tiny")
def tiny(**overrides: Any) -> VideoMAE:
    return VideoMAE(mae_config("tiny", **overrides))


@register_model("vit_s")
def vit_s(**overrides: Any) -> VideoMAE:
    return VideoMAE(mae_config("vit_s", **overrides))


@register_model("vit_b")
def vit_b(**overrides: Any) -> VideoMAE:
    return VideoMAE(mae_config("vit_b", **overrides))


@register_model("vit_l")
def vit_l(**overrides: Any) -> VideoMAE:
    return VideoMAE(mae_config("vit_l", **overrides))
