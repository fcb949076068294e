"""AdaMAE's own sampler options and the env option that lets its loss reach the patch embedding."""

from __future__ import annotations

import torch

from adamae_rl import make_env, make_objective, make_policy
from adamae_rl.envs import MaskedVideoEnv
from adamae_rl.models.videomae import Block

OFFICIAL = dict(num_heads=8, qkv_bias=False, dropout=0.1, norm_eps=1e-5)


def test_block_defaults_are_unchanged():
    default = Block(64, 4)
    assert sorted(default.state_dict()) == sorted([
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.q_bias", "attn.v_bias", "attn.proj.weight",
        "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias",
    ])
    assert default.norm1.eps == 1e-6 and not any(isinstance(m, torch.nn.Dropout) for m in default.modules())


def test_official_sampler_block():
    block = Block(64, 8, qkv_bias=False, dropout=0.1, norm_eps=1e-5)
    assert "attn.q_bias" not in block.state_dict() and "attn.v_bias" not in block.state_dict()
    assert block.norm1.eps == block.norm2.eps == 1e-5
    x = torch.randn(2, 5, 64)
    torch.manual_seed(0)
    assert not torch.equal(block.train()(x), block(x))  # dropout draws in training
    assert torch.equal(block.eval()(x), block(x))  # and is off in evaluation


def policy_and_grads(make_small_env, token_grad: bool):
    """One env step with the official sampler; gradients of the policy loss and of loss_recon apart."""
    env = make_small_env(batch_size=2, mask_ratio=0.75)
    env.token_grad = token_grad  # the constructor option (see the test below) sets this attribute
    torch.manual_seed(1)
    policy = make_policy("adaptive", env=env, **OFFICIAL)
    objective = make_objective("adamae", policy)
    td = env.step(policy(env.reset()))
    model = env.model
    loss_policy = objective(td)["loss_policy"]
    grads_policy_loss = torch.autograd.grad(loss_policy, list(model.parameters()) + list(policy.parameters()), allow_unused=True)
    loss_recon = td.get(("next", "loss_recon")).mean()
    grads_recon = torch.autograd.grad(loss_recon, list(policy.parameters()), allow_unused=True)
    names = [n for n, _ in model.named_parameters()]
    mae_part = dict(zip(names, grads_policy_loss[: len(names)]))
    return td, mae_part, grads_policy_loss[len(names):], grads_recon


def nonzero(grad) -> bool:
    return grad is not None and bool(grad.abs().sum() > 0)


def test_token_grad_reaches_patch_embedding_and_nothing_else(make_small_env):
    td_sep, mae_sep, pol_sep, recon_sep = policy_and_grads(make_small_env, token_grad=False)
    td_off, mae_off, pol_off, recon_off = policy_and_grads(make_small_env, token_grad=True)

    # Default (the contract): the policy loss reaches no MAE parameter.
    assert not any(nonzero(g) for g in mae_sep.values())
    # Official AdaMAE behaviour: it reaches the patch embedding, and only it.
    assert nonzero(mae_off["patch_embed.weight"]) and nonzero(mae_off["patch_embed.bias"])
    assert [n for n, g in mae_off.items() if nonzero(g)] == ["patch_embed.weight", "patch_embed.bias"]
    # Both ways the policy gets its own gradient, and loss_recon never reaches the policy.
    assert all(nonzero(g) for g in pol_sep) and all(nonzero(g) for g in pol_off)
    assert not any(nonzero(g) for g in recon_sep + recon_off)
    # Nothing else changes: same clips, same mask, same tokens, rewards and losses.
    for key in ("tokens", "mask", ("next", "reward"), ("next", "loss_recon")):
        assert torch.equal(td_sep.get(key).detach(), td_off.get(key).detach()), key
    assert td_off.get("tokens").requires_grad and not td_sep.get("tokens").requires_grad


def test_token_grad_option():
    env = make_env(model="tiny", batch_size=1, mask_ratio=0.9, img_size=32, num_frames=8)
    assert env.token_grad is False
    official = MaskedVideoEnv(env.model, env.clips, 1, 0.9, token_grad=True)
    assert official.token_grad is True and official.reset().get("tokens").requires_grad
