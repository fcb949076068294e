"""The masking-policy contract.

A masking policy is a TensorDict module: it reads ``tokens`` ``[B, N, D]`` and/or ``patches``
``[B, N, P]`` and writes ``mask`` bool ``[B, N]`` (True = masked, the same count ``N_m`` in every
row). Learnable policies also write ``logits`` ``[B, N]`` and ``visible_order`` ``[B, N_v]``
(visible token indices in draw order) for the objectives.
"""

from __future__ import annotations

import logging

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModuleBase

from adamae_rl.policies.distributions import MaskDistribution

log = logging.getLogger("adamae_rl.policies")

Grid = tuple[int, int, int]


class NonFiniteError(ValueError):
    """A policy met non-finite inputs or scores and drew no mask."""


class MaskingPolicy(TensorDictModuleBase):
    """Base class for masking policies.

    Subclasses implement :meth:`distribution` and set ``num_masked``. ``learnable`` is True when
    the policy has parameters that an objective should train.

    Args:
        grid: token grid ``(T', H', W')``.
        mask_ratio: requested share of masked tokens in (0, 1).
    """

    in_keys: list = ["tokens"]
    out_keys: list = ["mask"]
    learnable: bool = False

    def __init__(self, grid: Grid, mask_ratio: float) -> None:
        super().__init__()
        self.grid: Grid = tuple(int(g) for g in grid)
        self.mask_ratio = float(mask_ratio)
        t, h, w = self.grid
        self.num_tokens = t * h * w
        self.num_masked: int = 0  # set by subclasses

    @property
    def effective_mask_ratio(self) -> float:
        """The share of tokens this policy actually masks (tube/frame round to whole units)."""
        return self.num_masked / self.num_tokens

    @property
    def num_visible(self) -> int:
        return self.num_tokens - self.num_masked

    def distribution(self, td: TensorDictBase) -> MaskDistribution:
        raise NotImplementedError(f"{type(self).__name__} must implement distribution(td)")

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        dist = self.distribution(td)
        td.set("mask", dist.sample())
        return td

    def _report_ratio(self) -> None:
        if abs(self.effective_mask_ratio - self.mask_ratio) > 1e-9:
            log.info(
                "%s masks %d of %d tokens: effective ratio %.4f for requested %.4f",
                type(self).__name__, self.num_masked, self.num_tokens, self.effective_mask_ratio, self.mask_ratio,
            )

    def extra_repr(self) -> str:
        return f"grid={self.grid}, mask_ratio={self.mask_ratio}, num_masked={self.num_masked}"


def batch_of(td: TensorDictBase) -> tuple[torch.Size, torch.device]:
    """Batch shape and device of an observation tensordict (from ``tokens`` or ``patches``)."""
    for key in ("tokens", "patches"):
        if key in td.keys():
            value = td.get(key)
            return value.shape[:-2], value.device
    return td.batch_size, td.device or torch.device("cpu")
