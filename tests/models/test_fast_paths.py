"""The step's fast paths compute what the plain formulas compute."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from adamae_rl.data.transforms import denormalize
from adamae_rl.models import videomae
from adamae_rl.models.presets import build_mae
from adamae_rl.models.videomae import attention, chunked_attention, compile_blocks
from adamae_rl.utils.optim import adamw, param_groups

SMALL = dict(img_size=32, num_frames=8)  # grid (4, 4, 4): 64 tokens


def qkv(dtype: torch.dtype, shape=(2, 3, 50, 16)) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(shape, dtype=dtype, requires_grad=True) for _ in range(3)]


def forward_backward(fn, q, k, v) -> list[torch.Tensor]:
    out = fn(q, k, v)
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    return [out, *grads]


@pytest.mark.parametrize("chunk_bytes", [50 * 50 * 4, 3 * 50 * 50 * 4, 1 << 30])  # one, three, all pairs per chunk
def test_chunked_attention_matches_sdpa_in_fp32(chunk_bytes: int) -> None:
    q, k, v = qkv(torch.float32)
    ours = forward_backward(lambda *t: chunked_attention(*t, chunk_bytes=chunk_bytes), q, k, v)
    ref = forward_backward(F.scaled_dot_product_attention, q, k, v)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_bf16_attention_on_cpu_is_close_to_fp32() -> None:
    """The bf16 CPU path (chunked) stays within bf16 rounding of the fp32 result, output and grads."""
    q, k, v = qkv(torch.float32)
    ref = forward_backward(F.scaled_dot_product_attention, q, k, v)
    low = [t.detach().bfloat16().requires_grad_() for t in (q, k, v)]
    ours = forward_backward(attention, *low)
    assert ours[0].dtype == torch.bfloat16
    for a, b in zip(ours, ref):
        assert ((a.float() - b).norm() / b.norm()).item() < 2e-2


def test_embed_patches_equals_the_conv_embedding() -> None:
    torch.manual_seed(0)
    model = build_mae("tiny", **SMALL)
    video = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(model.embed_patches(model.patchify(video)), model.embed(video), atol=1e-5, rtol=1e-4)


def test_patchify_and_targets_follow_the_reference_layout_and_formula() -> None:
    torch.manual_seed(0)
    model = build_mae("tiny", **SMALL)  # norm_target=True by default
    video = torch.randn(2, 3, 8, 32, 32)
    ref = rearrange(video, "b c (tn t) (hn p1) (wn p2) -> b (tn hn wn) (t p1 p2 c)", t=2, p1=8, p2=8)
    assert torch.equal(model.patchify(video), ref)
    pixels = rearrange(denormalize(video), "b c (tn t) (hn p1) (wn p2) -> b (tn hn wn) (t p1 p2) c", t=2, p1=8, p2=8)
    expected = (pixels - pixels.mean(2, keepdim=True)) / (pixels.var(2, unbiased=True, keepdim=True).sqrt() + 1e-6)
    torch.testing.assert_close(model.targets(video), expected.flatten(-2), atol=1e-4, rtol=1e-4)


def test_compile_failure_falls_back_to_eager_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compile that fails at the first call runs that call eagerly: same outputs, one warning."""
    torch.manual_seed(0)
    model = build_mae("tiny", **SMALL)
    video, mask = torch.randn(2, 3, 8, 32, 32), torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 16:] = True
    expected = model(video, mask)

    def broken_compile(fn, *args, **kwargs):
        if getattr(fn, "__name__", "") == "<lambda>":  # let the toolchain probe pass
            return fn

        def fails(*a, **kw):
            raise RuntimeError("inductor: simulated compiler crash\nmore detail")

        return fails

    monkeypatch.setattr(videomae.torch, "compile", broken_compile)
    assert compile_blocks(model) is True
    with pytest.warns(RuntimeWarning, match="torch.compile failed \\(RuntimeError: inductor: simulated compiler crash\\); running eagerly") as caught:
        out = model(video, mask)
    assert len(caught) == 1
    torch.testing.assert_close(out, expected)
    assert set(model.state_dict()) == set(build_mae("tiny", **SMALL).state_dict())


def test_unusable_compiler_is_found_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_toolchain(fn, *args, **kwargs):
        def fails(*a, **kw):
            raise OSError("gcc: not found")

        return fails

    monkeypatch.setattr(videomae.torch, "compile", no_toolchain)
    model = build_mae("tiny", **SMALL)
    with pytest.warns(RuntimeWarning, match=r"torch.compile is not usable here \(OSError: gcc: not found\); running eagerly"):
        assert compile_blocks(model) is False
    assert "forward" not in vars(model.blocks[0])


def test_adamw_is_fused_on_cpu_and_matches_the_loop() -> None:
    torch.manual_seed(0)
    models = [build_mae("tiny", **SMALL) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    fused = adamw(param_groups(models[0], 0.05), 1e-3, (0.9, 0.95))
    loop = adamw(param_groups(models[1], 0.05), 1e-3, (0.9, 0.95), fused=False)
    assert fused.defaults["fused"] and not loop.defaults["fused"]
    for model in models:
        for p in model.parameters():
            p.grad = torch.ones_like(p) * 0.1
    fused.step(), loop.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a, b)
