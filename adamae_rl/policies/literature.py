"""Masking strategies from the literature after AdaMAE, as policies behind the same interface.

- ``motion``: flow-free motion-guided masking (the idea of MGMAE and MGM, without a flow network).
- ``embedding_change``: EVEREST's redundancy-robust token selection.
- ``loss_predictor``: hard-patches mining (HPM), a learned head trained by a supervised objective.

Each is written from the published description; the docstrings state the rule and the source.
"""

from __future__ import annotations

import math

import torch
from tensordict import TensorDictBase
from torch import nn

from adamae_rl.policies.base import Grid, MaskingPolicy, NonFiniteError, draw
from adamae_rl.policies.distributions import HardFirstMask, MaskDistribution, PlackettLuceMask, SlicedPlackettLuceMask, count_masked
from adamae_rl.policies.registry import register_policy


def slice_differences(x: torch.Tensor, grid: Grid) -> torch.Tensor:
    """Squared change of each token from the same place in the previous slice.

    x: ``[*batch, N, F]`` in ``(t h w)`` order -> ``[*batch, T' - 1, H'W']``: entry ``t`` is the
    mean squared difference between slice ``t + 1`` and slice ``t``.
    """
    t, h, w = grid
    slices = x.reshape(*x.shape[:-2], t, h * w, x.shape[-1]).float()
    return (slices[..., 1:, :, :] - slices[..., :-1, :, :]).pow(2).mean(-1)


def check_temperature(name: str, temperature: float) -> float:
    if not float(temperature) > 0 or not math.isfinite(float(temperature)):
        raise ValueError(f"{name}: temperature must be > 0 (lower = greedier, higher = closer to uniform), got {temperature}")
    return float(temperature)


class ScoredMasking(MaskingPolicy):
    """A heuristic score per token; visible tokens drawn with probability rising with it.

    Visible tokens are drawn without replacement with probability proportional to
    ``score ** (1 / temperature)`` (scores divided by their clip's mean first, so the law does not
    depend on the pixel scale): temperature towards 0 is greedy (the top scores), large is uniform.
    ``per_slice=True`` draws within every temporal slice, each slice keeping ``N_v // T'`` visible
    tokens (the ``N_v mod T'`` slices with the highest total score keep one more), so every slice
    keeps its share; ``per_slice=False`` draws over the whole clip.

    Writes ``mask`` and ``scores`` ``[*batch, N]`` (the first draw's probability within its slice,
    or the clip: what the visualization shows).
    """

    out_keys = ["mask", "scores"]

    def __init__(self, grid: Grid, mask_ratio: float, temperature: float, per_slice: bool) -> None:
        super().__init__(grid, mask_ratio)
        name = type(self).registered_name
        self.temperature = check_temperature(name, temperature)
        self.per_slice = bool(per_slice)
        t, h, w = self.grid
        if t < 2:
            raise ValueError(f"{name} compares temporal slices and needs at least 2, the grid {self.grid} has {t}")
        self.num_masked = count_masked(self.num_tokens, mask_ratio)

    registered_name = "scored"

    def token_scores(self, td: TensorDictBase) -> torch.Tensor:
        """Non-negative scores ``[*batch, N]``; subclasses implement."""
        raise NotImplementedError

    def logits(self, td: TensorDictBase) -> torch.Tensor:
        scores = self.token_scores(td)
        if not bool(torch.isfinite(scores).all()):
            raise NonFiniteError(f"{type(self).registered_name} policy: non-finite scores (from non-finite inputs); no mask drawn")
        relative = scores / scores.mean(-1, keepdim=True).clamp(min=1e-12)
        return torch.log(relative + 1e-6) / self.temperature

    def quota(self, logits: torch.Tensor) -> torch.Tensor:
        """Visible tokens per slice ``[*batch, T']``: ``N_v // T'``, plus one on the ``N_v mod T'``
        slices with the highest total score."""
        t, h, w = self.grid
        base, extra = divmod(self.num_visible, t)
        mass = torch.logsumexp(logits.reshape(*logits.shape[:-1], t, h * w), dim=-1)  # [*, T']
        ranks = mass.argsort(dim=-1, descending=True).argsort(dim=-1)
        return base + (ranks < extra).long()

    def distribution(self, td: TensorDictBase) -> MaskDistribution:
        logits = self.logits(td)
        if not self.per_slice:
            return PlackettLuceMask(logits, self.num_visible)
        return SlicedPlackettLuceMask(logits, self.grid, self.quota(logits))

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        dist = self.distribution(td)
        mask = dist.to_mask(draw(dist))
        t, h, w = self.grid
        logits = dist.logits
        if self.per_slice:
            probs = torch.softmax(logits.reshape(*logits.shape[:-1], t, h * w), dim=-1).reshape(logits.shape)
        else:
            probs = torch.softmax(logits, dim=-1)
        td.set("mask", mask)
        td.set("scores", probs)
        return td

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}, per_slice={self.per_slice}"


@register_policy("motion")
class MotionMasking(ScoredMasking):
    """Flow-free motion-guided masking: keep the tokens where the pixels move visible.

    Rule: a token's score is the frame-difference energy of its pixels, the mean squared change
    of its raw patch (``patches``) from the same place in the previous slice and to the same place
    in the next one (averaged where both exist). Visible tokens are drawn per temporal slice with
    probability proportional to ``score ** (1 / temperature)`` (see :class:`ScoredMasking`).

    Source: motion-guided masking for video MAEs — MGMAE (Huang et al., ICCV 2023, arXiv
    2308.10794) warps a tube mask along optical flow, MGM (Fan et al., ICCV 2023, arXiv
    2308.12962) masks along motion vectors; here the motion cue is the plain frame difference,
    with no flow network, which says where things move.

    Args:
        grid: token grid ``(T', H', W')``; mask_ratio: share of masked tokens.
        temperature: > 0; lower = more greedily the moving tokens, higher = closer to uniform.
        per_slice: draw within every temporal slice (default) or over the whole clip.
    """

    registered_name = "motion"
    in_keys = ["patches"]

    def __init__(self, grid: Grid, mask_ratio: float, temperature: float = 0.25, per_slice: bool = True) -> None:
        super().__init__(grid, mask_ratio, temperature, per_slice)

    def token_scores(self, td: TensorDictBase) -> torch.Tensor:
        change = slice_differences(td.get("patches"), self.grid)  # [*, T'-1, HW]
        before = torch.cat([change[..., :1, :], change], dim=-2)  # slice 0 has no previous: use its next
        after = torch.cat([change, change[..., -1:, :]], dim=-2)  # the last has no next: use its previous
        return ((before + after) / 2).flatten(-2)


@register_policy("embedding_change")
class EmbeddingChangeMasking(ScoredMasking):
    """EVEREST-style redundancy-robust selection: show the encoder the tokens that change most.

    Rule: a token's score is the distance between its patch embedding (``tokens``) and the
    embedding at the same place in the previous slice (the first slice takes its distance to the
    next one); the encoder sees the highest-scoring tokens, drawn per temporal slice with
    probability proportional to ``score ** (1 / temperature)``, near-greedy by default.

    Source: EVEREST (Hwang et al., ICML 2024, arXiv 2211.10636), which drops tokens whose
    embedding barely changes between adjacent frames as redundant and keeps the top-changing ones.

    Args:
        grid: token grid ``(T', H', W')``; mask_ratio: share of masked tokens.
        temperature: > 0; the default 0.1 is close to EVEREST's top-k selection.
        per_slice: select within every temporal slice (default) or over the whole clip.
    """

    registered_name = "embedding_change"
    in_keys = ["tokens"]

    def __init__(self, grid: Grid, mask_ratio: float, temperature: float = 0.1, per_slice: bool = True) -> None:
        super().__init__(grid, mask_ratio, temperature, per_slice)

    def token_scores(self, td: TensorDictBase) -> torch.Tensor:
        change = slice_differences(td.get("tokens"), self.grid).sqrt()  # [*, T'-1, HW], L2 distance / sqrt(D)
        return torch.cat([change[..., :1, :], change], dim=-2).flatten(-2)


@register_policy("loss_predictor")
class LossPredictorMasking(MaskingPolicy):
    """Hard-patches mining: a learned head predicts each token's reconstruction error, and the
    predicted-hardest tokens are masked, more of them as training goes on.

    Rule: a per-token head (learned position embedding + LayerNorm + MLP on ``tokens``) predicts
    the reconstruction error, written as ``predicted_error`` ``[*batch, N]``; it is trained by
    ``objective=loss_prediction`` on the env's per-token rewards. The mask is easy-to-hard: a
    share ``hard_share = start_share + (end_share - start_share) * progress`` of the masked tokens
    are the predicted-hardest ones, the rest are drawn uniformly from the others. ``progress`` in
    [0, 1] is the share of training done, which the trainer passes through :meth:`set_progress`.
    ``direction="show_hard"`` turns the rule around (the share is of the visible tokens, which
    then show the predicted-hardest ones), the direction of AdaMAE's sampler.

    Source: HPM, "Hard Patches Mining for Masked Image Modeling" (Wang et al., CVPR 2023, arXiv
    2304.05919): an auxiliary head predicts the patch-wise loss (trained with a relative ranking
    loss) and masks the predicted-hard patches, their share rising from 0 to 0.5 over training.

    Args:
        grid: token grid; mask_ratio: share of masked tokens; embed_dim: width of ``tokens``.
        hidden: width of the head's MLP.
        start_share, end_share: share of the set placed by predicted error at progress 0 and 1.
        direction: ``"hide_hard"`` (HPM) or ``"show_hard"``.
    """

    registered_name = "loss_predictor"
    in_keys = ["tokens"]
    out_keys = ["mask", "predicted_error", "scores"]
    learnable = True
    # The objectives that can train it: it writes predicted errors, not draw logits.
    objectives = ("loss_prediction",)
    DIRECTIONS = ("hide_hard", "show_hard")

    def __init__(
        self,
        grid: Grid,
        mask_ratio: float,
        embed_dim: int,
        hidden: int = 128,
        start_share: float = 0.0,
        end_share: float = 0.5,
        direction: str = "hide_hard",
    ) -> None:
        super().__init__(grid, mask_ratio)
        for name, value in (("start_share", start_share), ("end_share", end_share)):
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"loss_predictor: {name} must be in [0, 1], got {value}")
        if direction not in self.DIRECTIONS:
            raise ValueError(f"loss_predictor: direction must be one of {', '.join(self.DIRECTIONS)}, got {direction!r}")
        if hidden < 1:
            raise ValueError(f"loss_predictor: hidden must be >= 1, got {hidden}")
        self.num_masked = count_masked(self.num_tokens, mask_ratio)
        self.embed_dim, self.direction = embed_dim, direction
        self.start_share, self.end_share = float(start_share), float(end_share)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.progress = 0.0

    def set_progress(self, fraction: float) -> None:
        """The share of training done, in [0, 1] (the trainer calls this before every step)."""
        self.progress = min(max(float(fraction), 0.0), 1.0)

    @property
    def hard_share(self) -> float:
        return self.start_share + (self.end_share - self.start_share) * self.progress

    @property
    def num_hard(self) -> int:
        placed = self.num_masked if self.direction == "hide_hard" else self.num_visible
        return int(round(self.hard_share * placed))

    def predict(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens ``[*batch, N, D]`` -> predicted per-token error ``[*batch, N]`` (with gradient)."""
        if tokens.shape[-2:] != (self.num_tokens, self.embed_dim):
            raise ValueError(f"tokens must be [B, {self.num_tokens}, {self.embed_dim}], got {tuple(tokens.shape)}")
        return self.head(tokens + self.pos_embed[0].to(tokens.dtype)).squeeze(-1)

    def _distribution(self, predicted: torch.Tensor) -> HardFirstMask:
        if not bool(torch.isfinite(predicted).all()):
            raise NonFiniteError("loss_predictor policy: non-finite predicted errors; no mask drawn")
        return HardFirstMask(predicted, self.num_masked, self.num_hard, hide_hard=self.direction == "hide_hard")

    def distribution(self, td: TensorDictBase) -> HardFirstMask:
        return self._distribution(self.predict(td.get("tokens")))

    def forward(self, td: TensorDictBase) -> TensorDictBase:
        predicted = self.predict(td.get("tokens"))
        dist = self._distribution(predicted)
        td.set("mask", dist.to_mask(draw(dist)))
        td.set("predicted_error", predicted)
        td.set("scores", predicted.detach())
        return td

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, direction={self.direction}, hard_share={self.hard_share:.3f}"
