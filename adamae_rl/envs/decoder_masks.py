"""Decoder masking (VideoMAE V2's "dual masking"): which encoder-masked tokens the decoder rebuilds.

VideoMAE V2 (Wang et al., CVPR 2023, arXiv 2303.16727) masks the decoder too: it runs on the
encoder's visible tokens plus only a subset of the mask tokens, and the loss covers only that
subset. That saves decoder compute (and memory) in proportion to the tokens dropped.

A decoder mask here is ``decode``: bool ``[B, N]``, True = reconstructed, always a subset of the
encoder ``mask`` (True = masked) with the same count ``N_d`` in every row (so the decoder's input
stays a dense ``[B, N_v + N_d, D]`` block). ``ratio`` is the share of the encoder-masked tokens
*dropped* from the decoder: ``N_d = N_m - round(ratio * N_m)``.

- ``running_cell`` (VideoMAE V2's rule): the spatial grid is cut into 2x2 cells; in every cell a
  fixed number of the four positions (``ratio`` in quarters) is dropped, and the dropped
  positions move on by one at each temporal slice, so over four slices every position is
  reconstructed. Tokens on the kept positions are reconstructed first; because the encoder mask
  is arbitrary, a row may hold a few more or fewer of them than ``N_d``, and the difference is
  made up by a uniform random choice (the trimmed or added tokens), so every row keeps ``N_d``.
- ``random``: a uniform random ``N_d`` of the masked tokens.
- ``none``: every masked token is reconstructed (the default; no ``decode`` tensor at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

DECODER_MASKS = ("none", "running_cell", "random")

# Positions inside a 2x2 cell in the order the running pattern visits them: (row, column).
CELL_ORDER = ((0, 0), (0, 1), (1, 1), (1, 0))


def decoded_count(num_masked: int, ratio: float) -> int:
    """``N_d = N_m - round(ratio * N_m)``; ValueError naming the numbers when none is left."""
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"decoder_mask.ratio must be in (0, 1), got {ratio}")
    kept = num_masked - int(round(float(ratio) * num_masked))
    if kept < 1:
        raise ValueError(
            f"decoder_mask.ratio={ratio} drops {num_masked - kept} of the {num_masked} masked tokens, "
            "leaving none to reconstruct"
        )
    return kept


class DecoderMask:
    """Base: ``select(mask) -> decode``, both bool ``[B, N]`` (see the module docstring).

    Args:
        grid: token grid ``(T', H', W')``.
        ratio: share of the encoder-masked tokens dropped from the decoder, in (0, 1).
        num_masked: the nominal ``N_m``, to check at construction that ``ratio`` leaves some.
    """

    name = "base"

    def __init__(self, grid: tuple[int, int, int], ratio: float, num_masked: int) -> None:
        self.grid = tuple(int(g) for g in grid)
        self.ratio = float(ratio)
        decoded_count(num_masked, ratio)

    def priority(self, mask: torch.Tensor) -> torch.Tensor:
        """``[*, N]`` float: higher = reconstructed first (before the random tie-break)."""
        return torch.zeros(mask.shape, device=mask.device)

    def select(self, mask: torch.Tensor) -> torch.Tensor:
        """mask bool ``[B, N]`` (True = masked, ``N_m`` per row) -> decode bool ``[B, N]``, ``N_d`` per row."""
        num_masked = int(mask[..., 0, :].sum()) if mask.dim() > 1 else int(mask.sum())
        kept = decoded_count(num_masked, self.ratio)
        # Priority in whole units, plus a uniform key in [0, 1) that breaks ties at random;
        # visible tokens sit far below every masked one.
        keys = self.priority(mask) + torch.rand(mask.shape, device=mask.device)
        keys = keys.masked_fill(~mask, -1.0)
        chosen = keys.topk(kept, dim=-1).indices
        return torch.zeros_like(mask).scatter_(-1, chosen, True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(grid={self.grid}, ratio={self.ratio})"


class RandomDecoderMask(DecoderMask):
    """A uniform random ``N_d`` of the masked tokens."""

    name = "random"


class RunningCellDecoderMask(DecoderMask):
    """VideoMAE V2's running-cell decoder mask (see the module docstring)."""

    name = "running_cell"

    def __init__(self, grid: tuple[int, int, int], ratio: float, num_masked: int) -> None:
        super().__init__(grid, ratio, num_masked)
        t, h, w = self.grid
        quarters = float(ratio) * 4
        if abs(quarters - round(quarters)) > 1e-9:
            raise ValueError(
                f"decoder_mask running_cell drops whole quarters of each 2x2 cell: ratio must be 0.25, 0.5 or 0.75, got {ratio}"
            )
        if h % 2 or w % 2:
            raise ValueError(f"decoder_mask running_cell needs an even spatial grid for 2x2 cells, got {h}x{w} (grid {self.grid})")
        self.dropped_per_cell = int(round(quarters))
        self.keep = self.pattern()

    def pattern(self) -> torch.Tensor:
        """bool ``[N]`` in ``(t h w)`` order: True where the running cell keeps the position."""
        t, h, w = self.grid
        slot = torch.empty(2, 2, dtype=torch.long)
        for index, (row, col) in enumerate(CELL_ORDER):
            slot[row, col] = index
        slots = slot.repeat(h // 2, w // 2)  # [H', W']: each position's place in its cell's cycle
        time = torch.arange(t).view(t, 1, 1)
        # At slice s the dropped slots are s, s+1, ..., s+q-1 (mod 4): the pattern runs by one.
        dropped = (slots.unsqueeze(0) - time) % 4 < self.dropped_per_cell
        return (~dropped).reshape(-1)

    def priority(self, mask: torch.Tensor) -> torch.Tensor:
        return self.keep.to(mask.device).float().expand(mask.shape) * 2.0


def make_decoder_mask(spec: str | Mapping[str, Any] | None, grid: tuple[int, int, int], num_masked: int) -> DecoderMask | None:
    """A decoder mask from ``None``, a name, or ``{"name": ..., "ratio": ...}`` (ratio default 0.5).

    ``none`` (or None) gives None: every masked token is reconstructed.
    """
    if spec is None:
        return None
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(options.pop("name", "none"))
    ratio = options.pop("ratio", 0.5)
    if options:
        raise ValueError(f"decoder_mask: unknown option(s) {sorted(options)}; known: name, ratio")
    if name == "none":
        return None
    classes = {"running_cell": RunningCellDecoderMask, "random": RandomDecoderMask}
    if name not in classes:
        raise ValueError(f"unknown decoder_mask {name!r}; known: {', '.join(DECODER_MASKS)}")
    if ratio is None or isinstance(ratio, bool) or not isinstance(ratio, (int, float)):
        raise ValueError(f"decoder_mask.ratio must be a number in (0, 1), got {ratio!r}")
    return classes[name](grid, float(ratio), num_masked)
