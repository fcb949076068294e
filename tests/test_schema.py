"""The training config's schema: types, ranges, unknown keys and plug-in options, one message each."""

from __future__ import annotations

import pytest
from helpers_cli import smoke_config

from adamae_rl.schema import (
    LEGACY_DEFAULTS,
    ConfigError,
    DecoderMaskConfig,
    OptimConfig,
    SyntheticData,
    TrainConfig,
    TrainerConfig,
    VideoData,
    resumable_keys,
    stored_config,
    validate_config,
    with_legacy_defaults,
)


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


def _composed(*overrides: str) -> dict:
    """The shipped config with no preset (the YAML defaults themselves) plus overrides."""
    from hydra import compose, initialize_config_dir

    from adamae_rl.config import plain
    from adamae_rl.train import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return plain(compose("config", overrides=list(overrides)))


def test_validate_config_returns_the_typed_config() -> None:
    cfg = validate_config(smoke_config("trainer.batch_size=3", "policy=tube"))
    assert isinstance(cfg, TrainConfig)
    assert cfg.trainer.batch_size == 3 and isinstance(cfg.optim.betas, tuple)
    assert cfg.policy.name == "tube" and cfg.data.name == "synthetic"
    # A built-in source's section records every value it uses, defaults included.
    assert set(cfg.data.options()) == set(SyntheticData.model_fields)
    # Plain values, the same config again when read back.
    assert validate_config(cfg.as_dict()).as_dict() == cfg.as_dict()


@pytest.mark.parametrize(
    "section, overrides, model",
    [("trainer", [], TrainerConfig), ("optim", [], OptimConfig), ("data", [], SyntheticData),
     ("data", ["data=video"], VideoData), ("decoder_mask", ["decoder_mask=random"], DecoderMaskConfig),
     ("decoder_mask", ["decoder_mask=running_cell"], DecoderMaskConfig)],
)
def test_yaml_repeats_the_schema_defaults(section: str, overrides: list[str], model: type) -> None:
    """One default per setting: where the schema has a default, the shipped YAML states the same value."""
    yaml_values = _composed(*overrides)[section]
    differ = {
        key: (yaml_values[key], info.default)
        for key, info in model.model_fields.items()
        if key in yaml_values and not info.is_required() and info.default_factory is None
        and yaml_values[key] != (list(info.default) if isinstance(info.default, tuple) else info.default)
    }
    assert not differ, f"{section}: YAML value vs schema default {differ}"


def test_legacy_defaults_apply_only_to_stored_runs() -> None:
    new = validate_config(_composed()).as_dict()
    assert new["optim"]["policy_eps"] == 1e-12 and new["data"]["background"] == "smooth"
    # A new run records every key the legacy table knows, so the table never changes how it reads back.
    for section, values in LEGACY_DEFAULTS.items():
        name, _, source = section.partition(".")
        target = new if not name else new[name]
        if not source or target.get("name") == source:
            assert set(values) <= set(target), section
    assert with_legacy_defaults(new) == new
    # A run stored before policy_eps and background existed ran with 1e-8 on the fine background.
    old = {**new, "optim": {k: v for k, v in new["optim"].items() if k != "policy_eps"},
           "data": {k: v for k, v in new["data"].items() if k != "background"}}
    restored = with_legacy_defaults(old)
    assert restored["optim"]["policy_eps"] == 1e-8 and restored["data"]["background"] == "fine"
    assert stored_config(old)["data"]["background"] == "fine"
    assert "background" not in old["data"]  # the stored config itself is left as it was


@pytest.mark.parametrize("source", ["synthetic", "video"])
def test_built_in_sources_take_the_yaml_defaults(source: str) -> None:
    """A library call that leaves a data option out gets the value a training run's YAML gives it."""
    import inspect

    from adamae_rl.data.factory import DATA_SOURCES
    from adamae_rl.data.video import sampling_options

    yaml_values = _composed(f"data={source}")["data"]
    differ = {}
    for name, param in inspect.signature(DATA_SOURCES.get(source)).parameters.items():
        if name in yaml_values and param.default is not inspect.Parameter.empty and yaml_values[name] != param.default:
            differ[name] = (yaml_values[name], param.default)
    if source == "video":  # options read from the config's keys, each with one fallback
        from_yaml, left_out = sampling_options(yaml_values, train=True, img_size=64), sampling_options({}, train=True, img_size=64)
        differ.update({k: (getattr(from_yaml, k), v) for k, v in vars(left_out).items() if getattr(from_yaml, k) != v})
    assert not differ, f"data={source}: YAML value vs library default {differ}"
