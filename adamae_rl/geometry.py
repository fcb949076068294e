"""The one owner of clip and token geometry.

A clip is ``[C, T, H, W]`` with ``T = num_frames`` and ``H = W = img_size``; tubelets are
``(tubelet_size, patch_size, patch_size)``, so the token grid is ``(T/t, H/p, W/p)`` and
``N = T/t * H/p * W/p`` tokens run in ``(t h w)`` row-major order. Sizes that do not divide are
refused here, once, with the numbers named; the model config, the data sources and the policies
all ask this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adamae_rl.errors import ConfigError


@dataclass(frozen=True)
class ClipGeometry:
    """What a clip must look like for the model: ``[3, num_frames, img_size, img_size]``."""

    num_frames: int
    img_size: int
    patch_size: int
    tubelet_size: int

    def __post_init__(self) -> None:
        for name in ("num_frames", "img_size", "patch_size", "tubelet_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_frames % self.tubelet_size:
            raise ConfigError(f"num_frames={self.num_frames} is not divisible by tubelet_size={self.tubelet_size}")
        if self.img_size % self.patch_size:
            raise ConfigError(f"img_size={self.img_size} is not divisible by patch_size={self.patch_size}")

    @classmethod
    def of(cls, cfg: Any) -> ClipGeometry:
        """The geometry of anything with the four fields (an ``MAEConfig``, a config mapping)."""
        get = cfg.get if isinstance(cfg, dict) else lambda k: getattr(cfg, k)
        return cls(int(get("num_frames")), int(get("img_size")), int(get("patch_size")), int(get("tubelet_size")))

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid ``(T/t, H/p, W/p)``."""
        side = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, side, side

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


def policy_geometry(model_cfg: Any, mask_ratio: float) -> dict[str, Any]:
    """What a policy factory may take from its environment (see ``adamae_rl.policies.registry``):
    ``grid``, ``mask_ratio``, ``embed_dim`` (width of ``tokens``), ``patch_dim`` (of ``patches``)."""
    return {
        "grid": ClipGeometry.of(model_cfg).grid,
        "mask_ratio": float(mask_ratio),
        "embed_dim": int(model_cfg.embed_dim),
        "patch_dim": int(model_cfg.patch_dim),
    }
