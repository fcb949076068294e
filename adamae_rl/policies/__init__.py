"""Masking policies (random, tube, frame, adaptive, motion, embedding_change, loss_predictor) and their registry."""

from adamae_rl.policies import adaptive as _adaptive  # noqa: F401  (registers "adaptive")
from adamae_rl.policies import builtin as _builtin  # noqa: F401  (registers random/tube/frame)
from adamae_rl.policies import literature as _literature  # noqa: F401  (motion/embedding_change/loss_predictor)
from adamae_rl.policies.adaptive import AdaptiveMasking
from adamae_rl.policies.base import LearnablePolicy, MaskingPolicy
from adamae_rl.policies.builtin import FrameMasking, RandomMasking, TubeMasking
from adamae_rl.policies.literature import EmbeddingChangeMasking, LossPredictorMasking, MotionMasking, ScoredMasking
from adamae_rl.policies.distributions import (
    FrameMask,
    HardFirstMask,
    MaskDistribution,
    PlackettLuceMask,
    SlicedPlackettLuceMask,
    TubeMask,
    UniformMask,
    count_masked,
    plackett_luce_log_prob,
)
from adamae_rl.policies.registry import (
    ENTRY_POINT_GROUP,
    UnknownPolicyError,
    build_policy,
    get_policy_factory,
    list_policies,
    register_policy,
    unregister_policy,
)

__all__ = [
    "MaskingPolicy", "LearnablePolicy", "RandomMasking", "TubeMasking", "FrameMasking", "AdaptiveMasking", "ScoredMasking",
    "MotionMasking", "EmbeddingChangeMasking", "LossPredictorMasking", "HardFirstMask", "SlicedPlackettLuceMask",
    "MaskDistribution", "UniformMask", "TubeMask", "FrameMask", "PlackettLuceMask",
    "count_masked", "plackett_luce_log_prob", "ENTRY_POINT_GROUP", "UnknownPolicyError",
    "build_policy", "get_policy_factory", "list_policies", "register_policy", "unregister_policy",
]
