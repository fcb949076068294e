"""Distributions over token masks.

Every distribution here is a ``torch.distributions.Distribution`` whose ``sample()`` is an
*action* that ``log_prob`` scores and ``to_mask`` turns into ``mask``: bool ``[*batch, N]``, True
= masked, with exactly the same number of masked tokens ``N_m`` in every row. For laws over sets
(uniform, tube, frame, hard-first) the action is the mask itself; for the Plackett-Luce laws, whose
set probability is a sum over draw orders, it is ``visible_order`` long ``[*batch, N_v]`` (the
visible tokens in draw order), scored exactly. ``action_key`` names the entry a policy writes the
action to, so TorchRL's ``ProbabilisticActor`` and losses can store and re-score it. Each also has
``mode`` (= ``deterministic_sample``) and ``entropy()`` (exact, or an unbiased estimate where no
closed form exists). Sampling is vectorized (random keys + sort / top-k); nothing loops over batch
rows or tokens.
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

    # The tensordict entry a policy writes the sample to (TorchRL's "action").
    action_key: str = "mask"

    def to_mask(self, value: torch.Tensor) -> torch.Tensor:
        """The bool mask ``[*, N]`` (True = masked) of an action from :meth:`sample`."""
        return value

    @property
    def mode(self) -> torch.Tensor:
        """A most probable action (every mask of a uniform law is one; a fixed one is returned)."""
        return self._fixed_mask()

    @property
    def deterministic_sample(self) -> torch.Tensor:
        """What TorchRL draws under ``ExplorationType.DETERMINISTIC``: :attr:`mode`."""
        return self.mode

    def _fixed_mask(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no mode")

    def _constant(self, value: float) -> torch.Tensor:
        return torch.full(self.batch_shape, value, device=self.device)


def _first_visible(batch_shape: torch.Size, count: int, visible: int, device) -> torch.Tensor:
    """bool ``[*batch_shape, count]``: the first ``visible`` units visible, the rest masked."""
    return (torch.arange(count, device=device) >= visible).expand(*batch_shape, count).clone()


class UniformMask(MaskDistribution):
    """Uniform over all subsets of ``N_m`` masked tokens (random masking)."""

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        return uniform_subset(shape, self.num_tokens, self.num_masked, self.device)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        lp = -_log_binomial(self.num_tokens, self.num_masked)
        return torch.where(self._valid_count(value), lp, -math.inf)

    def entropy(self) -> torch.Tensor:
        """Exact: ``log C(N, N_m)``, ``[*batch]``."""
        return self._constant(_log_binomial(self.num_tokens, self.num_masked))

    def _fixed_mask(self) -> torch.Tensor:
        return _first_visible(self.batch_shape, self.num_tokens, self.num_visible, self.device)


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

    def entropy(self) -> torch.Tensor:
        """Exact: ``log C(H'W', masked positions)``, ``[*batch]``."""
        t, h, w = self.grid
        return self._constant(_log_binomial(h * w, self.spatial_masked))

    def _fixed_mask(self) -> torch.Tensor:
        t, h, w = self.grid
        spatial = _first_visible(self.batch_shape, h * w, h * w - self.spatial_masked, self.device)
        return spatial.unsqueeze(-2).expand(*self.batch_shape, t, h * w).reshape(*self.batch_shape, t * h * w)


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

    def entropy(self) -> torch.Tensor:
        """Exact: ``log C(T', masked slices)``, ``[*batch]``."""
        return self._constant(_log_binomial(self.grid[0], self.frames_masked))

    def _fixed_mask(self) -> torch.Tensor:
        t, h, w = self.grid
        frames = _first_visible(self.batch_shape, t, t - self.frames_masked, self.device)
        return frames.unsqueeze(-1).expand(*self.batch_shape, t, h * w).reshape(*self.batch_shape, t * h * w)


class PlackettLuceMask(MaskDistribution):
    """Visible tokens drawn one by one without replacement from ``softmax(logits)`` (AdaMAE).

    Drawing ``N_v`` tokens sequentially, each with probability proportional to ``exp(logit)``
    among those not yet drawn, is the Plackett-Luce model; the Gumbel-top-k trick draws the
    whole ordered set at once and is equivalent to ``torch.multinomial(softmax(logits), N_v,
    replacement=False)``.

    The probability of an *unordered* visible set is a sum over ``N_v!`` orders, so the action
    is the ordered draw: :meth:`sample` returns ``visible_order`` long ``[*S, *batch, N_v]`` (the
    visible indices in draw order), :meth:`log_prob` scores it exactly, :meth:`to_mask` gives the
    bool mask. ``mode`` is the greedy draw (the ``N_v`` largest logits, largest first), the most
    probable ordered draw. ``entropy()`` is an unbiased estimate (see :meth:`entropy`).

    Args:
        logits: ``[*batch, N]`` unnormalized log-probabilities of being drawn visible.
        num_visible: ``N_v``.
        entropy_samples: draws that :meth:`entropy` averages over.
    """

    action_key = "visible_order"

    def __init__(self, logits: torch.Tensor, num_visible: int, entropy_samples: int = 4) -> None:
        self.logits = logits
        num_tokens = logits.shape[-1]
        if not 0 < num_visible < num_tokens:
            raise ValueError(f"num_visible={num_visible} must be in [1, {num_tokens - 1}]")
        self.entropy_samples = int(entropy_samples)
        super().__init__(logits.shape[:-1], num_tokens, num_tokens - num_visible, logits.device)
        self._event_shape = torch.Size([num_visible])  # the action is the ordered visible draw

    def sample_ordered(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(mask [*S, *batch, N], order [*S, *batch, N_v])``; ``order`` = visible in draw order."""
        order = self.sample(sample_shape)
        return self.to_mask(order), order

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """``visible_order`` long ``[*S, *batch, N_v]``: an ordered draw without replacement."""
        with torch.no_grad():
            logits = self.logits.detach().float().expand(torch.Size(sample_shape) + self.logits.shape)
            return (logits + _gumbel_like(logits)).topk(self.num_visible, dim=-1, sorted=True).indices

    def to_mask(self, value: torch.Tensor) -> torch.Tensor:
        """``visible_order`` ``[*, N_v]`` -> bool mask ``[*, N]``, True = masked."""
        return torch.ones((*value.shape[:-1], self.num_tokens), dtype=torch.bool, device=value.device).scatter_(-1, value, False)

    @property
    def mode(self) -> torch.Tensor:
        return self.logits.detach().topk(self.num_visible, dim=-1, sorted=True).indices

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log-probability of an ordered draw ``value``: long ``[*batch, N_v]`` -> ``[*batch]``."""
        if value.dtype == torch.bool:
            raise ValueError(
                "PlackettLuceMask.log_prob scores ordered draws: pass visible indices [*, N_v] "
                "in draw order (from sample()), not a bool mask"
            )
        return plackett_luce_log_prob(self.logits, value)

    def entropy(self) -> torch.Tensor:
        """Unbiased estimate of the entropy of the ordered draw, ``[*batch]``.

        By the chain rule the entropy is ``E_o[sum_j H(draw j | o_<j)]``; each term is exact given
        the prefix, so averaging over ``entropy_samples`` draws (detached) is unbiased and far less
        noisy than ``-log_prob`` of a draw. Its gradient (prefixes held fixed) raises every step's
        spread, which is what an entropy bonus wants; no closed form exists for ``N_v > 1``.
        """
        order = self.sample(torch.Size([max(self.entropy_samples, 1)]))
        rank = draw_ranks(order, self.num_tokens)
        steps = sequential_entropy(self.logits.float(), rank, self.num_visible)
        return steps.sum(-1).mean(0)

    def entropy_first_draw(self) -> torch.Tensor:
        """Entropy of the first draw, ``H(softmax(logits))``: ``[*batch]``."""
        logp = torch.log_softmax(self.logits.float(), dim=-1)
        return -(logp.exp() * logp).sum(dim=-1)


def _gumbel_like(logits: torch.Tensor) -> torch.Tensor:
    u = torch.rand_like(logits).clamp_(min=torch.finfo(logits.dtype).tiny, max=1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def draw_ranks(order: torch.Tensor, num_tokens: int, first: torch.Tensor | None = None) -> torch.Tensor:
    """Long ``[*, N]``: each token's position in ``order`` ``[*, K]`` (``first`` subtracted), ``num_tokens`` if undrawn."""
    ranks = torch.arange(order.shape[-1], device=order.device).expand(order.shape)
    if first is not None:
        ranks = ranks - first
    full = torch.full((*order.shape[:-1], num_tokens), num_tokens, dtype=torch.long, device=order.device)
    return full.scatter(-1, order, ranks)


def sequential_entropy(logits: torch.Tensor, rank: torch.Tensor, steps: int) -> torch.Tensor:
    """Entropy of each draw given the earlier ones: ``[*, steps]``.

    Args:
        logits: ``[*, M]`` (broadcast against ``rank``); rank: long ``[*, M]``, each item's draw
            position (``>= steps`` if never drawn). Step ``j`` draws from the items of rank ``>= j``.
    """
    j = torch.arange(steps, device=rank.device)
    gone = rank.unsqueeze(-2) < j.unsqueeze(-1)  # [*, steps, M]: drawn before step j
    log_p = torch.log_softmax(logits.unsqueeze(-2).masked_fill(gone, -math.inf), dim=-1)
    return -(log_p.exp() * log_p.masked_fill(gone, 0.0)).sum(-1)


def plackett_luce_log_prob(logits: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """``log P(order)`` of drawing ``order`` without replacement from ``softmax(logits)``.

    ``sum_j [ l_{o_j} - log sum_{i not in o_<j} exp(l_i) ]``. The normalizer for step ``j`` is
    the mass of the never-drawn tokens plus that of the draws ``o_j, o_{j+1}, ...``: a reverse
    cumulative log-sum-exp, exact and stable (no subtraction of probabilities).

    Args:
        logits: ``[*batch, N]``; order: long ``[*batch, K]`` distinct indices in draw order
            (leading shapes broadcast, e.g. ``[S, *batch, K]`` draws against one set of logits).
    Returns:
        ``[*batch]``.
    """
    lead = torch.broadcast_shapes(logits.shape[:-1], order.shape[:-1])
    logits = logits.float().expand(*lead, logits.shape[-1])
    order = order.expand(*lead, order.shape[-1])
    drawn = logits.gather(-1, order)  # [*, K]
    undrawn = logits.scatter(-1, order, -math.inf)
    rest = torch.logsumexp(undrawn, dim=-1, keepdim=True)  # [*, 1]
    tail = torch.logcumsumexp(drawn.flip(-1), dim=-1).flip(-1)  # log sum_{m >= j} exp(l_{o_m})
    normalizers = torch.logaddexp(tail, rest.expand_as(tail))
    return (drawn - normalizers).sum(dim=-1)


class SlicedPlackettLuceMask(MaskDistribution):
    """Plackett-Luce draws of visible tokens within each temporal slice, a fixed quota per slice.

    Slice ``t`` draws ``quota[t]`` visible tokens without replacement from the softmax of its own
    logits (Gumbel-top-k within the slice); the quotas sum to ``N_v`` in every row, so every slice
    keeps its share of the visible tokens and every row masks exactly ``N_m``.

    ``log_prob`` scores the ordered draw, as :class:`PlackettLuceMask` does: the visible indices
    ``[*batch, N_v]`` slice by slice, each slice's in draw order (as :meth:`sample` returns).

    Args:
        logits: ``[*batch, N]`` in ``(t h w)`` order.
        grid: ``(T', H', W')``.
        quota: long ``[*batch, T']``, visible tokens per slice, summing to ``N_v``.
    """

    def __init__(self, logits: torch.Tensor, grid: tuple[int, int, int], quota: torch.Tensor, entropy_samples: int = 4) -> None:
        self.logits, self.grid, self.quota = logits, tuple(grid), quota
        self.entropy_samples = int(entropy_samples)
        t, h, w = self.grid
        num_visible = int(quota.reshape(-1, t)[0].sum())
        if bool((quota.sum(-1) != num_visible).any()) or bool((quota > h * w).any()) or bool((quota < 0).any()):
            raise ValueError(f"per-slice quotas must sum to the same N_v in every row and fit {h * w} positions per slice")
        super().__init__(logits.shape[:-1], t * h * w, t * h * w - num_visible, logits.device)
        self._event_shape = torch.Size([num_visible])  # the action is the ordered visible draw

    def _per_slice(self, values: torch.Tensor) -> torch.Tensor:
        t, h, w = self.grid
        return values.reshape(*values.shape[:-1], t, h * w)

    action_key = "visible_order"
    to_mask = PlackettLuceMask.to_mask

    def sample_ordered(self, sample_shape: torch.Size = torch.Size()) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mask [*S, *batch, N], order [*S, *batch, N_v])``, ``order`` slice-major, each slice in draw order."""
        order = self.sample(sample_shape)
        return self.to_mask(order), order

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        """``visible_order`` long ``[*S, *batch, N_v]``: slice-major, each slice in draw order."""
        with torch.no_grad():
            logits = self.logits.detach().float().expand(torch.Size(sample_shape) + self.logits.shape)
            return self._take(logits + _gumbel_like(logits))

    @property
    def mode(self) -> torch.Tensor:
        """The greedy draw: in every slice its ``quota`` largest logits, largest first."""
        with torch.no_grad():
            return self._take(self.logits.detach().float())

    def _take(self, keys: torch.Tensor) -> torch.Tensor:
        """The visible order that ranking ``keys`` ``[*S, *batch, N]`` within each slice gives."""
        t, h, w = self.grid
        lead = keys.shape[:-1]
        ranked = self._per_slice(keys).argsort(dim=-1, descending=True)  # [*, T', HW]
        taken = torch.arange(h * w, device=keys.device) < self.quota.expand(*lead, t).unsqueeze(-1)
        index = ranked + torch.arange(t, device=keys.device).unsqueeze(-1) * (h * w)  # token indices
        return index[taken].reshape(*lead, self.num_visible)

    def entropy(self) -> torch.Tensor:
        """Unbiased estimate, ``[*batch]``: the slices draw independently, each as in
        :meth:`PlackettLuceMask.entropy` (chain rule over its draws, averaged over samples)."""
        t, h, w = self.grid
        order = self.sample(torch.Size([max(self.entropy_samples, 1)]))  # [S, *batch, N_v]
        quota = self.quota.expand(*order.shape[:-1], t)
        first = torch.cumsum(quota, -1) - quota  # [*, T'] list position where each slice starts
        slice_of = torch.div(order, h * w, rounding_mode="floor")
        rank = self._per_slice(draw_ranks(order, t * h * w, first.gather(-1, slice_of)))  # [*, T', HW]
        steps = sequential_entropy(self._per_slice(self.logits.float()), rank, int(self.quota.max()))
        taken = torch.arange(steps.shape[-1], device=steps.device) < quota.unsqueeze(-1)
        return (steps * taken).sum((-1, -2)).mean(0)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Exact log-probability of an ordered draw ``value``: long ``[*batch, N_v]`` (slice-major)."""
        if value.dtype == torch.bool:
            raise ValueError("SlicedPlackettLuceMask.log_prob scores ordered draws: pass visible indices [*, N_v] from sample()")
        t, h, w = self.grid
        quota = self.quota.expand(*value.shape[:-1], t)
        slice_of = torch.div(value, h * w, rounding_mode="floor")  # [*, N_v]
        counts = torch.nn.functional.one_hot(slice_of, t).sum(-2)
        slice_major = bool((slice_of[..., 1:] >= slice_of[..., :-1]).all())
        valid = (counts == quota).all(-1) & slice_major
        # Lay the draws out as [*, T', q_max] (padding = -inf logits) and score each slice's draw.
        q_max = int(quota.max())
        start = torch.cumsum(quota, -1) - quota  # [*, T'] first list position of each slice
        rank = torch.arange(value.shape[-1], device=value.device) - start.gather(-1, slice_of.clamp(max=t - 1))
        padded = torch.full((*value.shape[:-1], t * max(q_max, 1)), h * w, dtype=torch.long, device=value.device)
        flat = (slice_of.clamp(max=t - 1) * max(q_max, 1) + rank.clamp(0, max(q_max, 1) - 1))
        padded = padded.scatter(-1, flat, value % (h * w)).reshape(*value.shape[:-1], t, max(q_max, 1))
        logits = self._per_slice(self.logits.float()).expand(*value.shape[:-1], t, h * w)
        logits = torch.cat([logits, torch.full_like(logits[..., :1], -math.inf)], dim=-1)  # column h*w = padding
        drawn = logits.gather(-1, padded)  # [*, T', q_max]
        rest = torch.logsumexp(logits.scatter(-1, padded, -math.inf), dim=-1, keepdim=True)
        tail = torch.logcumsumexp(drawn.flip(-1), dim=-1).flip(-1)
        terms = drawn - torch.logaddexp(tail, rest.expand_as(tail))
        real = padded < h * w
        total = torch.where(real, terms, torch.zeros_like(terms)).sum(dim=(-1, -2))
        return torch.where(valid, total, torch.full_like(total, -math.inf))


class HardFirstMask(MaskDistribution):
    """The ``num_hard`` highest-scoring tokens placed first, the rest of the set uniform at random.

    ``hide_hard=True``: the top ``num_hard`` tokens by score are masked, and ``N_m - num_hard``
    more are masked uniformly among the others (hard-patches mining's mask). ``hide_hard=False``:
    the top tokens are kept visible instead, and ``N_v - num_hard`` more visible ones are uniform.

    Args:
        scores: ``[*batch, N]`` (e.g. predicted reconstruction errors).
        num_masked: ``N_m``; num_hard: tokens placed by score (``<= N_m`` or ``<= N_v``).
    """

    def __init__(self, scores: torch.Tensor, num_masked: int, num_hard: int, hide_hard: bool = True) -> None:
        self.scores = scores.detach()
        self.hide_hard, self.num_hard = bool(hide_hard), int(num_hard)
        num_tokens = scores.shape[-1]
        super().__init__(scores.shape[:-1], num_tokens, num_masked, scores.device)
        limit = num_masked if self.hide_hard else num_tokens - num_masked
        if not 0 <= self.num_hard <= limit:
            raise ValueError(f"num_hard={num_hard} must be in [0, {limit}]")

    def hard_tokens(self) -> torch.Tensor:
        """bool ``[*batch, N]``: the ``num_hard`` highest-scoring tokens."""
        top = self.scores.topk(self.num_hard, dim=-1).indices
        return torch.zeros(self.scores.shape, dtype=torch.bool, device=self.scores.device).scatter_(-1, top, True)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.scores.shape
        keys = torch.rand(shape, device=self.scores.device).masked_fill(self.hard_tokens().expand(shape), 2.0)
        ranks = keys.argsort(dim=-1, descending=True).argsort(dim=-1)
        chosen = ranks < (self.num_masked if self.hide_hard else self.num_visible)
        return chosen if self.hide_hard else ~chosen

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        placed = value if self.hide_hard else ~value
        valid = self._valid_count(value) & (placed | ~self.hard_tokens()).all(-1)
        chosen = self.num_masked if self.hide_hard else self.num_visible
        lp = -_log_binomial(self.num_tokens - self.num_hard, chosen - self.num_hard)
        return torch.where(valid, lp, -math.inf)

    def entropy(self) -> torch.Tensor:
        """Exact: ``log C(N - num_hard, placed - num_hard)``, ``[*batch]``."""
        chosen = self.num_masked if self.hide_hard else self.num_visible
        return self._constant(_log_binomial(self.num_tokens - self.num_hard, chosen - self.num_hard))

    def _fixed_mask(self) -> torch.Tensor:
        # Every set holding the hard tokens is equally likely; the one placed fully by score is returned.
        placed = self.num_masked if self.hide_hard else self.num_visible
        top = self.scores.topk(placed, dim=-1).indices
        chosen = torch.zeros(self.scores.shape, dtype=torch.bool, device=self.scores.device).scatter_(-1, top, True)
        return chosen if self.hide_hard else ~chosen
