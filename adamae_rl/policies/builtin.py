"""Heuristic masking policies: random, tube, frame (no parameters, nothing to train)."""

from __future__ import annotations

from tensordict import TensorDictBase

from adamae_rl.policies.base import Grid, MaskingPolicy, batch_of
from adamae_rl.policies.distributions import FrameMask, TubeMask, UniformMask, count_masked
from adamae_rl.policies.registry import register_policy


@register_policy("random")
class RandomMasking(MaskingPolicy):
    """A uniform random subset of tokens masked (MAE-ST / VideoMAE v2 random masking)."""

    def __init__(self, grid: Grid, mask_ratio: float) -> None:
        super().__init__(grid, mask_ratio)
        self.num_masked = count_masked(self.num_tokens, mask_ratio)

    def distribution(self, td: TensorDictBase) -> UniformMask:
        batch_shape, device = batch_of(td)
        return UniformMask(batch_shape, self.num_tokens, self.num_masked, device)


@register_policy("tube")
class TubeMasking(MaskingPolicy):
    """VideoMAE tube masking: one random spatial subset, masked at every time step.

    Masks ``round(ratio * H'W')`` positions per time step, so the effective ratio is a multiple
    of ``1 / (H'W')``.
    """

    def __init__(self, grid: Grid, mask_ratio: float) -> None:
        super().__init__(grid, mask_ratio)
        t, h, w = self.grid
        self.spatial_masked = count_masked(h * w, mask_ratio, "spatial positions per time step")
        self.num_masked = t * self.spatial_masked
        self._report_ratio()

    def distribution(self, td: TensorDictBase) -> TubeMask:
        batch_shape, device = batch_of(td)
        return TubeMask(batch_shape, self.grid, self.spatial_masked, device)


@register_policy("frame")
class FrameMasking(MaskingPolicy):
    """Whole temporal slices masked.

    Only multiples of ``1 / T'`` are reachable: the policy masks ``round(ratio * T')`` slices,
    clamped to ``[1, T' - 1]`` so that something stays visible and something is masked, and
    reports the ratio it reaches as ``effective_mask_ratio``.
    """

    def __init__(self, grid: Grid, mask_ratio: float) -> None:
        super().__init__(grid, mask_ratio)
        t, h, w = self.grid
        if t < 2:
            raise ValueError(f"frame masking needs at least 2 temporal slices, the grid {self.grid} has {t}")
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.frames_masked = min(max(int(round(mask_ratio * t)), 1), t - 1)
        self.num_masked = self.frames_masked * h * w
        self._report_ratio()

    def distribution(self, td: TensorDictBase) -> FrameMask:
        batch_shape, device = batch_of(td)
        return FrameMask(batch_shape, self.grid, self.frames_masked, device)
