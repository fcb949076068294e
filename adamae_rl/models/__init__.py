"""VideoMAE-architecture masked autoencoder and its presets (a registry: ``@register_model``)."""

from adamae_rl.models.presets import MODELS, PRESETS, build_mae, list_models, mae_config, register_model, tiny, vit_b, vit_l, vit_s
from adamae_rl.models.videomae import MAEConfig, VideoMAE, check_mask, gather_tokens, sinusoid_table

__all__ = [
    "MAEConfig", "VideoMAE", "MODELS", "PRESETS", "build_mae", "mae_config", "list_models", "register_model",
    "tiny", "vit_s", "vit_b", "vit_l", "check_mask", "gather_tokens", "sinusoid_table",
]
