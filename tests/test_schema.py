"""The training config's schema: types, ranges, unknown keys and plug-in options, one message each."""

from __future__ import annotations

import pytest
from helpers_cli import smoke_config

from adamae_rl.schema import ConfigError, resumable_keys, validate_config


def test_shipped_configs_are_valid() -> None:
    for overrides in ([], ["objective=plackett_luce"], ["policy=tube"], ["model=vit_s"], ["data=video"]):
        validate_config(smoke_config(*overrides))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_steps=0"], "trainer.max_steps: input should be greater than or equal to 1 (got 0)"),
        (["optim.blr=inf"], "optim.blr: input should be a finite number (got inf)"),
        (["+foo=1"], "foo: unknown setting (got 1); check the spelling"),
        (["optim.betas=[0.9,1.5]"], "optim.betas: each beta must be in [0, 1), got [0.9, 1.5]"),
        (["trainer.precision=fp8"], "trainer.precision: input should be 'fp32', 'bf16', 'fp16' or 'auto' (got 'fp8')"),
        (["+policy.bogus=1"], "policy.bogus: unknown option (got 1); options: width, depth, num_heads, mlp_ratio"),
        (["objective=plackett_luce", "objective.ema_decay=x"], "objective.ema_decay: input should be a valid number"),
        (["+objective.nope=1"], "objective.nope: unknown option (got 1)"),
        (["data.max_shapes=0"], "data.max_shapes: input should be greater than or equal to 1 (got 0)"),
        (["data=video", "data.scales=[1.0,1.5]"], "data.scales: each scale must be in (0, 1], got [1.0, 1.5]"),
        (["+model.patch=8"], "model.patch: unknown setting"),
    ],
)
def test_bad_values_name_key_and_value(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(smoke_config(*overrides))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_several_problems_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"trainer.log_every: .*; trainer.ckpt_every: "):
        validate_config(smoke_config("trainer.log_every=0", "trainer.ckpt_every=0"))


def test_resumable_keys_are_declared_in_the_schema() -> None:
    keys = resumable_keys()
    assert {"trainer.max_steps", "trainer.device", "data.num_workers", "run_dir"} <= keys
    assert not {"mask_ratio", "trainer.seed", "optim.blr", "trainer.batch_size"} & keys
