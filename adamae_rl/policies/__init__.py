"""Masking policies (random, tube, frame, adaptive) and their registry."""

from adamae_rl.policies import adaptive as _adaptive  # noqa: F401  (registers "adaptive")
from adamae_rl.policies import builtin as _builtin  # noqa: F401  (registers random/tube/frame)
from adamae_rl.policies.adaptive import AdaptiveMasking
from adamae_rl.policies.base import MaskingPolicy
from adamae_rl.policies.builtin import FrameMasking, RandomMasking, TubeMasking
from adamae_rl.policies.distributions import (
    FrameMask,
    MaskDistribution,
    PlackettLuceMask,
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
    "MaskingPolicy", "RandomMasking", "TubeMasking", "FrameMasking", "AdaptiveMasking",
    "MaskDistribution", "UniformMask", "TubeMask", "FrameMask", "PlackettLuceMask",
    "count_masked", "plackett_luce_log_prob", "ENTRY_POINT_GROUP", "UnknownPolicyError",
    "build_policy", "get_policy_factory", "list_policies", "register_policy", "unregister_policy",
]
