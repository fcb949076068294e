"""The masking-policy contract.

A masking policy is a TensorDict module: it reads ``tokens`` ``[B, N, D]`` and/or ``patches``
``[B, N, P]`` and writes ``mask`` bool ``[B, N]`` (True = masked, the same count ``N_m`` in every
row). Learnable policies (:class:`LearnablePolicy`) also write ``logits`` ``[B, N]``,
``visible_order`` ``[B, N_v]`` (visible token indices in draw order) and its log-probability, and
re-score a stored ``visible_order`` (:meth:`LearnablePolicy.log_prob`) for objectives that train
on collected data. :meth:`LearnablePolicy.as_actor` gives the same law as a TorchRL
``ProbabilisticActor`` for TorchRL's losses.
"""

from __future__ import annotations

import logging

import torch
from tensordict import TensorDictBase
from tensordict.nn import InteractionType, TensorDictModule, TensorDictModuleBase, TensorDictSequential
from tensordict.nn.probabilistic import interaction_type

from adamae_rl.policies.distributions import MaskDistribution, PlackettLuceMask, count_masked

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
        action = draw(dist)
        td.set("mask", dist.to_mask(action))
        if dist.action_key != "mask":
            td.set(dist.action_key, action)
        return td

    def _report_ratio(self) -> None:
        if abs(self.effective_mask_ratio - self.mask_ratio) > 1e-9:
            log.info(
                "%s masks %d of %d tokens: effective ratio %.4f for requested %.4f",
                type(self).__name__, self.num_masked, self.num_tokens, self.effective_mask_ratio, self.mask_ratio,
            )

    def extra_repr(self) -> str:
        return f"grid={self.grid}, mask_ratio={self.mask_ratio}, num_masked={self.num_masked}"


def draw(dist: MaskDistribution) -> torch.Tensor:
    """A sample of ``dist``, or its mode under TorchRL's deterministic exploration type.

    Outside any ``set_exploration_type`` context a policy samples (masks are random by nature);
    ``DETERMINISTIC``/``MODE``/``MEAN``/``MEDIAN`` (evaluation) give ``dist.deterministic_sample``.
    """
    kind = interaction_type()
    if kind is None or kind == InteractionType.RANDOM:
        return dist.sample()
    return dist.deterministic_sample


class LearnablePolicy(MaskingPolicy):
    """A learnable policy from per-token scores: subclasses implement :meth:`scores` only.

    The scores are the logits of the Plackett-Luce law (:class:`PlackettLuceMask`): ``N_v``
    visible tokens drawn without replacement from ``softmax(scores)``. This base checks them,
    draws, and writes ``mask`` bool ``[*batch, N]``, ``logits`` ``[*batch, N]``, ``visible_order``
    long ``[*batch, N_v]`` and ``visible_order_log_prob`` ``[*batch]`` (TorchRL's name for the
    log-probability of the ``visible_order`` action); every objective that trains ``adaptive``
    trains a subclass.

    Args:
        grid: token grid ``(T', H', W')``; mask_ratio: share of masked tokens.
    """

    in_keys: list = ["tokens"]
    out_keys: list = ["mask", "logits", "visible_order", "visible_order_log_prob"]
    learnable = True
    action_key = "visible_order"
    log_prob_key = "visible_order_log_prob"

    def __init__(self, grid: Grid, mask_ratio: float) -> None:
        super().__init__(grid, mask_ratio)
        self.num_masked = count_masked(self.num_tokens, mask_ratio)

    def scores(self, td: TensorDictBase) -> torch.Tensor:
        """Per-token scores ``[*batch, N]`` with gradient into the parameters; subclasses implement."""
        raise NotImplementedError(f"{type(self).__name__} must implement scores(td) -> [*batch, {self.num_tokens}]")

    def logits(self, td: TensorDictBase) -> torch.Tensor:
        """:meth:`scores`, checked: ``[*batch, N]`` and finite (NonFiniteError otherwise)."""
        logits = self.scores(td)
        if logits.shape[-1:] != (self.num_tokens,):
            raise ValueError(f"{type(self).__name__}.scores must return [*batch, {self.num_tokens}], got {tuple(logits.shape)}")
        # Non-finite logits would make the Gumbel-top-k draw return the same tokens every time:
        # a silently fixed mask. Refuse instead (the trainer reports it like a non-finite loss).
        if not bool(torch.isfinite(logits).all()):
            raise NonFiniteError(f"{type(self).__name__}: non-finite logits (from {self._non_finite_source(td)}); no mask drawn")
        return logits

    def _non_finite_source(self, td: TensorDictBase) -> str:
        inputs = [td.get(k) for k in self.in_keys if k in td.keys()]
        if any(not bool(torch.isfinite(x).all()) for x in inputs if x.is_floating_point()):
            return "non-finite " + "/".join(self.in_keys)
        return "non-finite parameters"

    def distribution(self, td: TensorDictBase) -> PlackettLuceMask:
        return PlackettLuceMask(self.logits(td), self.num_visible)

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        dist = self.distribution(td)
        order = draw(dist)
        td.set("logits", dist.logits)
        td.set("mask", dist.to_mask(order))
        td.set(self.action_key, order)
        td.set(self.log_prob_key, dist.log_prob(order))
        return td

    def log_prob(self, td: TensorDictBase, action_key: str | None = None) -> torch.Tensor:
        """Re-run the policy on ``td``'s observation and score its stored action: ``[*batch]``.

        What TorchRL's losses do with collected data: the stored log-probability has no graph,
        the fresh one has (into the current parameters).
        """
        key = action_key or self.action_key
        if key not in td.keys(include_nested=True):
            raise KeyError(f"{type(self).__name__}.log_prob needs the stored action {key!r} in the tensordict")
        return self.distribution(td).log_prob(td.get(key))

    def as_actor(self):
        """This policy's law as a TorchRL ``ProbabilisticActor`` (parameters shared with it).

        The actor's action is ``visible_order`` with log-probability ``visible_order_log_prob``,
        so ``ClipPPOLoss``/``A2CLoss``/``ReinforceLoss`` re-score stored actions exactly. The env
        reads ``mask``: collect with :meth:`collector_policy`, which appends it.
        """
        from torchrl.modules import ProbabilisticActor  # here: importing the policies stays light

        scorer = TensorDictModule(_Scores(self), in_keys=list(self.in_keys), out_keys=["logits"])
        return ProbabilisticActor(
            scorer,
            in_keys=["logits"],
            out_keys=[self.action_key],
            distribution_class=PlackettLuceMask,
            distribution_kwargs={"num_visible": self.num_visible},
            return_log_prob=True,
        )

    def collector_policy(self, actor=None) -> TensorDictSequential:
        """``actor`` (default :meth:`as_actor`) followed by a module writing ``mask`` for the env."""
        return TensorDictSequential(actor if actor is not None else self.as_actor(), _WriteMask(self.num_tokens))


class _Scores(torch.nn.Module):
    """The policy's checked logits as a plain module of its input tensors (for TensorDictModule)."""

    def __init__(self, policy: LearnablePolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        from tensordict import TensorDict

        td = TensorDict(dict(zip(self.policy.in_keys, inputs)), batch_size=inputs[0].shape[:-2])
        return self.policy.logits(td)


class _WriteMask(TensorDictModuleBase):
    """``visible_order`` ``[*, N_v]`` -> ``mask`` bool ``[*, N]`` (True = masked), for the env."""

    def __init__(self, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.in_keys, self.out_keys = ["visible_order"], ["mask"]

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        order = td.get("visible_order")
        mask = torch.ones((*order.shape[:-1], self.num_tokens), dtype=torch.bool, device=order.device)
        td.set("mask", mask.scatter_(-1, order, False))
        return td


def batch_of(td: TensorDictBase) -> tuple[torch.Size, torch.device]:
    """Batch shape and device of an observation tensordict (from ``tokens`` or ``patches``)."""
    for key in ("tokens", "patches"):
        if key in td.keys():
            value = td.get(key)
            return value.shape[:-2], value.device
    return td.batch_size, td.device or torch.device("cpu")
