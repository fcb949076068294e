"""Plugin policies: @register_policy, collisions, _target_ configs, entry points, unknown names."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint

import pytest
import torch
from tensordict import TensorDictBase

import adamae_rl
from adamae_rl import make_policy, register_policy
from adamae_rl.policies import ENTRY_POINT_GROUP, MaskingPolicy, UnknownPolicyError, count_masked, unregister_policy
from adamae_rl.policies import registry
from adamae_rl.policies.distributions import MaskDistribution


class FirstTokensMask(MaskDistribution):
    """Always masks the first ``N_m`` tokens (deterministic)."""

    def sample(self, sample_shape=torch.Size()):
        shape = torch.Size(sample_shape) + self.batch_shape
        ids = torch.arange(self.num_tokens).expand(*shape, self.num_tokens)
        return ids < self.num_masked


class FirstTokensPolicy(MaskingPolicy):
    """A third-party policy: masks the lowest token indices; takes an extra option ``tag``."""

    def __init__(self, grid, mask_ratio, tag: str = "default") -> None:
        super().__init__(grid, mask_ratio)
        self.tag = tag
        self.num_masked = count_masked(self.num_tokens, mask_ratio)

    def distribution(self, td: TensorDictBase) -> FirstTokensMask:
        tokens = td.get("tokens")
        return FirstTokensMask(tokens.shape[:-2], self.num_tokens, self.num_masked)


@pytest.fixture(scope="module")
def env():
    torch.manual_seed(0)
    return adamae_rl.make_env(model="tiny", data="synthetic", batch_size=2, mask_ratio=0.75, seed=0, img_size=32, num_frames=8)


def check_runs(policy, env):
    td = env.step(policy(env.reset()))
    mask = td.get("mask")
    assert torch.equal(mask, (torch.arange(64) < 48).expand(2, 64))
    reward = td.get(("next", "reward"))
    assert (reward[:, 48:] == 0).all() and (reward[:, :48] > 0).all()


def test_decorated_policy_runs_through_make_policy_and_env(env):
    try:

        @register_policy("test_first_tokens")
        class Decorated(FirstTokensPolicy):
            pass

        assert "test_first_tokens" in adamae_rl.list_policies()
        policy = make_policy("test_first_tokens", env=env, tag="x")
        assert isinstance(policy, Decorated) and policy.tag == "x" and policy.num_masked == 48
        check_runs(policy, env)
        # Registering the same object again is harmless; a different object under the name is not.
        register_policy("test_first_tokens")(Decorated)
        with pytest.raises(ValueError, match=r"'test_first_tokens' is already registered to .*Decorated"):
            register_policy("test_first_tokens")(FirstTokensPolicy)
    finally:
        unregister_policy("test_first_tokens")
    assert "test_first_tokens" not in adamae_rl.list_policies()


def test_builtin_name_collision_names_the_holder():
    with pytest.raises(ValueError, match=r"'random' is already registered to adamae_rl\.policies\.builtin\.RandomMasking"):
        register_policy("random")(FirstTokensPolicy)
    assert adamae_rl.policies.get_policy_factory("random") is adamae_rl.policies.RandomMasking


def test_target_config(env):
    # This module is importable under its own __name__ (pytest put it on sys.path).
    policy = make_policy({"_target_": f"{__name__}.FirstTokensPolicy", "tag": "from-config"}, env=env)
    assert type(policy) is FirstTokensPolicy and policy.tag == "from-config"
    check_runs(policy, env)
    tube = make_policy({"_target_": "adamae_rl.policies.builtin:TubeMasking"}, env=env)
    assert type(tube) is adamae_rl.policies.TubeMasking


def test_bad_target_is_an_unknown_policy_error(env):
    with pytest.raises(UnknownPolicyError, match=r"cannot import policy _target_ 'adamae_rl\.policies\.NoSuchPolicy'"):
        make_policy({"_target_": "adamae_rl.policies.NoSuchPolicy"}, env=env)
    with pytest.raises(UnknownPolicyError, match=r"needs 'name' or '_target_'"):
        make_policy({"tag": 1}, env=env)


def test_entry_point_policy(env, monkeypatch):
    fake = EntryPoint(name="test_ep_first_tokens", value=f"{__name__}:FirstTokensPolicy", group=ENTRY_POINT_GROUP)
    broken = EntryPoint(name="test_ep_broken", value="no_such_module_xyz:Policy", group=ENTRY_POINT_GROUP)
    seen_groups = []

    def entry_points(group):
        seen_groups.append(group)
        return [fake, broken]

    monkeypatch.setattr(adamae_rl.registry, "entry_points", entry_points)
    monkeypatch.setattr(registry.POLICIES, "_entry_points_loaded", False)
    try:
        policy = make_policy("test_ep_first_tokens", env=env)
        assert seen_groups == ["adamae_rl.policies"]
        assert type(policy) is FirstTokensPolicy
        check_runs(policy, env)
        names = adamae_rl.list_policies()
        assert "test_ep_first_tokens" in names and "test_ep_broken" not in names  # a broken plugin is skipped
    finally:
        unregister_policy("test_ep_first_tokens")


def test_unknown_policy_lists_known_names(env):
    known = adamae_rl.list_policies()
    assert {"adaptive", "frame", "random", "tube"} <= set(known)
    with pytest.raises(UnknownPolicyError, match="unknown policy 'nope'; known policies: " + re.escape(", ".join(known))):
        make_policy("nope", env=env)
    assert issubclass(UnknownPolicyError, ValueError)
