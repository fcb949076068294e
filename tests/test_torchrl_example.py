"""examples/torchrl_ppo.py runs every estimator end to end (a few steps, small clips)."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch
from helpers_cli import REPO


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("torchrl_ppo_example", REPO / "examples" / "torchrl_ppo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("estimator", ["adamae", "plackett_luce", "rloo", "ppo"])
def test_every_estimator_trains_mae_and_policy(example, estimator):
    torch.manual_seed(0)
    result = example.run(estimator, 0, steps=2, model={**example.MODEL, "img_size": 32, "num_frames": 8}, mask_ratio=0.75,
                         noise_batches=3, verbose=False)
    assert result["steps"] == 2
    for key in ("enrichment_before", "enrichment", "grad_noise_start", "grad_noise_end"):
        assert math.isfinite(result[key]) and result[key] >= 0, key
    table = example.summarize([result])
    assert f"| {estimator} |" in table
