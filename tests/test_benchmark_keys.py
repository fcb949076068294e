"""Config keys of the benchmark: position table, attention bias, label set and background reject unknown values in one line."""

from __future__ import annotations

import pytest
from helpers_cli import smoke_config

from adamae_rl.schema import ConfigError, validate_config


def test_known_values_pass() -> None:
    for overrides in (["model.pos_embed=sincos_3d"], ["model.pos_embed=learned"], ["data.label=direction_shape"],
                      ["model.attn_bias=distance"], ["model.attn_bias=none"], ["data.background=fine"],
                      ["data.background=smooth"]):
        validate_config(smoke_config(*overrides))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.pos_embed=sincos", "model.pos_embed: input should be 'sincos_1d', 'sincos_3d' or 'learned' (got 'sincos')"),
        ("model.attn_bias=alibi", "model.attn_bias: input should be 'none', 'distance' or 'spatial_distance' (got 'alibi')"),
        ("data.label=colour", "data.label: input should be 'direction', 'shape', 'count', 'speed' or 'direction_shape' (got 'colour')"),
        ("data.background=plain", "data.background: input should be 'smooth' or 'fine' (got 'plain')"),
    ],
)
def test_unknown_values_list_the_known_ones(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(smoke_config(override))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_label_set_may_change_on_resume_but_the_position_table_may_not() -> None:
    from adamae_rl.schema import resumable_keys

    keys = resumable_keys()
    assert "data.label" in keys and "model.pos_embed" not in keys and "model.attn_bias" not in keys
    assert "data.background" not in keys  # other pixels: a resumed run may not switch
