"""Named MAE presets. The name encodes the width; clip geometry stays a builder argument."""

from __future__ import annotations

from typing import Any

from adamae_rl.models.videomae import MAEConfig, VideoMAE

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
    return sorted(PRESETS)


def mae_config(preset: str = "tiny", **overrides: Any) -> MAEConfig:
    """Config for a preset with field overrides (e.g. ``img_size=112, decoder_depth=2``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; known: {', '.join(list_models())}")
    fields = set(MAEConfig.__dataclass_fields__)
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown MAE config field(s) {sorted(unknown)}; known: {sorted(fields)}")
    return MAEConfig(**{**PRESETS[preset], **overrides})


def build_mae(preset: str = "tiny", **overrides: Any) -> VideoMAE:
    """Build a :class:`VideoMAE` from a preset name plus overrides."""
    return VideoMAE(mae_config(preset, **overrides))


def tiny(**overrides: Any) -> VideoMAE:
    return build_mae("tiny", **overrides)


def vit_s(**overrides: Any) -> VideoMAE:
    return build_mae("vit_s", **overrides)


def vit_b(**overrides: Any) -> VideoMAE:
    return build_mae("vit_b", **overrides)


def vit_l(**overrides: Any) -> VideoMAE:
    return build_mae("vit_l", **overrides)
