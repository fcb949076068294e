"""The learnable-policy example: registered, trained by the toolkit's objectives, its gradient kept apart."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from helpers_cli import REPO, run_cli

from adamae_rl import make_env, make_objective, make_policy
from adamae_rl.policies import list_policies, unregister_policy
from adamae_rl.policies.distributions import plackett_luce_log_prob

EXAMPLE = REPO / "examples" / "learnable_policy.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("learnable_policy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    unregister_policy("token_mlp")


def test_base_class_writes_the_learnable_contract(example):
    assert "token_mlp" in list_policies()
    torch.manual_seed(0)
    env = make_env("tiny", "synthetic", batch_size=4, mask_ratio=0.75, seed=0, img_size=32, num_frames=8)
    policy = make_policy("token_mlp", env=env)
    td = policy(env.reset())
    mask, order = td["mask"], td["visible_order"]
    assert (mask.sum(-1) == 48).all() and (~mask).gather(-1, order).all()
    torch.testing.assert_close(td["visible_order_log_prob"], plackett_luce_log_prob(td["logits"], order))
    td = env.step(td)
    for name in ("adamae", "plackett_luce"):
        loss = make_objective(name, policy=policy)(td)["loss_policy"]
        grads = torch.autograd.grad(loss, [policy.position, *env.model.parameters()], allow_unused=True)
        assert grads[0].abs().sum() > 0, name
        assert all(g is None for g in grads[1:]), "the policy loss must not reach the MAE"


@pytest.mark.slow
def test_learnable_example_trains_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "learnable_policy.py").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    result = run_cli("adamae_rl.train", "experiment=smoke", "imports=[learnable_policy]", "policy=token_mlp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(next(tmp_path.glob("runs/token_mlp-*/summary.json")).read_text())
    assert summary["policy"] == "token_mlp" and summary["objective"] == "adamae" and summary["steps"] == 12
