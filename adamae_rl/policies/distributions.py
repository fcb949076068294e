"""Distributions over token masks.

Every distribution here samples ``mask``: bool ``[*batch, N]``, True = masked, with exactly the
same number of masked tokens ``N_m`` in every row, and scores masks with ``log_prob``. Sampling
is vectorized (random keys + sort / top-k); nothing loops over batch rows or tokens.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import Distribution, constraints


def count_masked(count: int, ratio: float, what: str = "tokens") -> int:
    """How many of ``count`` units a ``ratio`` masks: ``round(ratio * count)``.

    Raises ValueError when the ratio is outside (0, 1) or leaves no unit visible / none masked.
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {ratio}")
    masked = int(round(float(ratio) * count))
    if masked >= count:
        raise ValueError(f"mask_ratio={ratio} masks {masked} of {count} {what}, leaving none visible")
    if masked < 1:
        raise ValueError(f"mask_ratio={ratio} masks none of {count} {what}")
    return masked


def _log_binomial(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def uniform_subset(batch_shape: torch.Size, count: int, chosen: int, device=None) -> torch.Tensor:
    """Bool ``[*batch_shape, count]`` with exactly ``chosen`` True per row, uniformly at random."""
    keys = torch.rand(*batch_shape, count, device=device)
    ranks = keys.argsort(dim=-1).argsort(dim=-1)  # a uniform random permutation per row
    return ranks < chosen


class MaskDistribution(Distribution):
    """Base class: a distribution over bool masks ``[*batch, N]`` (True = masked).

    Args:
        batch_shape: leading shape (usually ``[B]``).
        num_tokens: ``N``.
        num_masked: ``N_m``, identical for every row.
    """

    arg_constraints: dict = {}
    support = constraints.boolean
    has_rsample = False

    def __init__(self, batch_shape: torch.Size, num_tokens: int, num_masked: int, device=None) -> None:
        self.num_tokens = num_tokens
        self.num_masked = num_masked
        self.device = device
        super().__init__(torch.Size(batch_shape), torch.Size([num_tokens]), validate_args=False)

    @property
    def num_visible(self) -> int:
        return self.num_tokens - self.num_masked

    def _valid_count(self, mask: torch.Tensor) -> torch.Tensor:
        return mask.sum(dim=-1) == self.num_masked


class UniformMask(MaskDistribution):
    """Uniform over all subsets of ``N_m`` masked tokens (random masking)."""

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        return uniform_subset(shape, self.num_tokens, self.num_masked, self.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = -_log_binomial(self.num_tokens, self.num_masked)
        return torch.where(self._valid_count(value), lp, -math.inf)


class TubeMask(MaskDistribution):
    """The same uniform spatial subset masked at every time step (VideoMAE tube masking).

    Args:
        grid: ``(T', H', W')``; spatial_masked: masked positions per time step.
    """

    def __init__(self, batch_shape: torch.Size, grid: tuple[int, int, int], spatial_masked: int, device=None):
        self.grid = tuple(grid)
        t, h, w = self.grid
        self.spatial_masked = spatial_masked
        super().__init__(batch_shape, t * h * w, t * spatial_masked, device)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        t, h, w = self.grid
        shape = torch.Size(sample_shape) + self.batch_shape
        spatial = uniform_subset(shape, h * w, self.spatial_masked, self.device)  # [..., H'W']
        return spatial.unsqueeze(-2).expand(*shape, t, h * w).reshape(*shape, t * h * w)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        t, h, w = self.grid
        slices = value.reshape(*value.shape[:-1], t, h * w)
        is_tube = (slices == slices[..., :1, :]).all(dim=-1).all(dim=-1)
        valid = is_tube & self._valid_count(value)
        return torch.where(valid, -_log_binomial(h * w, self.spatial_masked), -math.inf)


class FrameMask(MaskDistribution):
    """Whole temporal slices masked: a uniform subset of ``frames_masked`` of the ``T'`` slices."""

    def __init__(self, batch_shape: torch.Size, grid: tuple[int, int, int], frames_masked: int, device=None):
        self.grid = tuple(grid)
        t, h, w = self.grid
        self.frames_masked = frames_masked
        super().__init__(batch_shape, t * h * w, frames_masked * h * w, device)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        t, h, w = self.grid
        shape = torch.Size(sample_shape) + self.batch_shape
        frames = uniform_subset(shape, t, self.frames_masked, self.device)  # [..., T']
        return frames.unsqueeze(-1).expand(*shape, t, h * w).reshape(*shape, t * h * w)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        t, h, w = self.grid
        slices = value.reshape(*value.shape[:-1], t, h * w)
        whole = (slices == slices[..., :1]).all(dim=-1).all(dim=-1)
        valid = whole & self._valid_count(value)
        return torch.where(valid, -_log_binomial(t, self.frames_masked), -math.inf)


class PlackettLuceMask(MaskDistribution):
    """Visible tokens drawn one by one without replacement from ``softmax(logits)`` (AdaMAE).

    Drawing ``N_v`` tokens sequentially, each with probability proportional to ``exp(logit)``
    among those not yet drawn, is the Plackett-Luce model; the Gumbel-top-k trick draws the
    whole ordered set at once and is equivalent to ``torch.multinomial(softmax(logits), N_v,
    replacement=False)``.

    The probability of an *unordered* visible set is a sum over ``N_v!`` orders, so
    ``log_prob`` scores the ordered draw: pass the visible indices ``[*batch, N_v]`` in draw
    order (as returned by :meth:`sample_ordered`).

    Args:
        logits: ``[*batch, N]`` unnormalized log-probabilities of being drawn visible.
        num_visible: ``N_v``.
    """

    def __init__(self, logits: torch.Tensor, num_visible: int) -> None:
        self.logits = logits
        num_tokens = logits.shape[-1]
        if not 0 < num_visible < num_tokens:
            raise ValueError(f"num_visible={num_visible} must be in [1, {num_tokens - 1}]")
        super().__init__(logits.shape[:-1], num_tokens, num_tokens - num_visible, logits.device)

    def sample_ordered(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mask [*S, *batch, N], order [*S, *batch, N_v])``; ``order`` = visible in draw order."""
        with torch.no_grad():
            logits = self.logits.detach().float().expand(torch.Size(sample_shape) + self.logits.shape)
            u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny, max=1.0 - 1e-7)
            gumbel = -torch.log(-torch.log(u))
            order = (logits + gumbel).topk(self.num_visible, dim=-1, sorted=True).indices
            mask = torch.ones_like(logits, dtype=torch.bool).scatter_(-1, order, False)
        return mask, order

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        return self.sample_ordered(sample_shape)[0]

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log-probability of an ordered draw ``value``: long ``[*batch, N_v]``."""
        if value.dtype == torch.bool:
            raise ValueError(
                "PlackettLuceMask.log_prob scores ordered draws: pass visible indices [*, N_v] "
                "in draw order (from sample_ordered), not a bool mask"
            )
        return plackett_luce_log_prob(self.logits, value)

    def entropy_first_draw(self) -> torch.Tensor:
        """Entropy of the first draw, ``H(softmax(logits))``: ``[*batch]``."""
        logp = torch.log_softmax(self.logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(dim=-1)


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``log P(order)`` of drawing ``order`` without replacement from ``softmax(logits)``.

    ``sum_j [ l_{o_j} - log sum_{i not in o_<j} exp(l_i) ]``. The normalizer for step ``j`` is
    the mass of the never-drawn tokens plus that of the draws ``o_j, o_{j+1}, ...``: a reverse
    cumulative log-sum-exp, exact and stable (no subtraction of probabilities).

    Args:
        logits: ``[*batch, N]``; order: long ``[*batch, K]`` distinct indices in draw order.
    Returns:
        ``[*batch]``.
    """
    logits = logits.float()
    drawn = logits.gather(-1, order)  # [*, K]
    undrawn = logits.scatter(-1, order, -math.inf)
    rest = torch.logsumexp(undrawn, dim=-1, keepdim=True)  # [*, 1]
    tail = torch.logcumsumexp(drawn.flip(-1), dim=-1).flip(-1)  # log sum_{m >= j} exp(l_{o_m})
    normalizers = torch.logaddexp(tail, rest.expand_as(tail))
    return (drawn - normalizers).sum(dim=-1)
