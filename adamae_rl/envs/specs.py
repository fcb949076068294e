"""TorchRL specs for mask actions."""

from __future__ import annotations

from functools import lru_cache

import torch
from torchrl.data import Binary

from adamae_rl.policies.distributions import uniform_subset


class FixedCountMaskSpec(Binary):
    """Bool masks ``[*batch, N]`` with exactly ``num_masked`` True per row.

    TorchRL's plain ``Binary`` samples every bit independently, so its random actions would be
    invalid masks. TorchRL rebuilds specs through ``self.__class__(n=..., shape=..., ...)``
    (clone, expand, to, indexing), so the count lives on a per-count subclass made by
    :meth:`for_count` rather than in the constructor.
    """

    num_masked: int = -1

    @staticmethod
    @lru_cache(maxsize=None)
    def for_count(num_masked: int) -> type[FixedCountMaskSpec]:
        return type(f"FixedCountMaskSpec{num_masked}", (FixedCountMaskSpec,), {"num_masked": num_masked})

    @classmethod
    def make(cls, num_tokens: int, num_masked: int, batch_shape=(), device=None) -> FixedCountMaskSpec:
        spec_cls = cls.for_count(num_masked)
        return spec_cls(n=num_tokens, shape=(*batch_shape, num_tokens), device=device, dtype=torch.bool)

    def rand(self, shape: torch.Size | None = None) -> torch.Tensor:
        lead = torch.Size(shape or ()) + self.shape[:-1]
        return uniform_subset(lead, self.shape[-1], self.num_masked, self.device)

    def is_in(self, val: torch.Tensor) -> bool:
        return bool(super().is_in(val)) and bool((val.sum(dim=-1) == self.num_masked).all())

    def __reduce__(self):
        # Dynamically made subclasses cannot be pickled by name: rebuild through make().
        return (_rebuild_spec, (self.shape[-1], self.num_masked, tuple(self.shape[:-1]), self.device))


def _rebuild_spec(num_tokens, num_masked, batch_shape, device) -> FixedCountMaskSpec:
    return FixedCountMaskSpec.make(num_tokens, num_masked, batch_shape, device)
