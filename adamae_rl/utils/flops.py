"""Floating-point work of a training step, and the matmul throughput the hardware reaches.

``torch.utils.flop_counter`` counts matmuls and convolutions, and the CUDA attention kernels,
but it counts **zero** for the CPU flash-attention kernels
(``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward) that
``F.scaled_dot_product_attention`` dispatches to on CPU. At 1,568 tokens attention is a large
share of a step, so an uncounted kernel makes model FLOP utilization (MFU) look far lower than it
is. :func:`flop_counter` adds formulas for both:

- forward: two matmuls, ``q @ k^T`` and ``p @ v``: ``4 * B * H * Lq * Lk * D``;
- backward: twice the forward, ``8 * B * H * Lq * Lk * D`` (the gradients of both matmuls with
  respect to both operands). Recomputing the scores inside the backward kernel is not counted:
  MFU counts the model's FLOPs, not the kernel's extra work. The CUDA backward kernels, which
  torch counts with the recomputation, get the same formula, so MFU means the same on any device.

:func:`matmul_peak` times a large square matmul in the given dtype on the given device: the
throughput this process can reach right now, the denominator of MFU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

aten = torch.ops.aten


def _attention_dims(query_shape: Any, key_shape: Any, value_shape: Any) -> tuple[int, int, int, int, int]:
    """``(batch*heads, Lq, Lk, Dqk, Dv)`` of ``[*batch, Lq, D]`` query / ``[*batch, Lk, D]`` key/value shapes."""
    *lead, lq, dqk = query_shape
    lk = key_shape[-2]
    dv = value_shape[-1]
    batch_heads = 1
    for size in lead:
        batch_heads *= int(size)
    return batch_heads, int(lq), int(lk), int(dqk), int(dv)


def attention_forward_flops(query_shape: Any, key_shape: Any, value_shape: Any) -> int:
    """FLOPs of ``softmax(q k^T) v``: ``2*BH*Lq*Lk*Dqk + 2*BH*Lq*Lk*Dv`` (= 4·B·H·Lq·Lk·D)."""
    bh, lq, lk, dqk, dv = _attention_dims(query_shape, key_shape, value_shape)
    return 2 * bh * lq * lk * dqk + 2 * bh * lq * lk * dv


def attention_backward_flops(query_shape: Any, key_shape: Any, value_shape: Any) -> int:
    """FLOPs of the attention backward: twice the forward (grads of both matmuls, both operands)."""
    return 2 * attention_forward_flops(query_shape, key_shape, value_shape)


def _attention_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return attention_forward_flops(query_shape, key_shape, value_shape)


def _attention_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return attention_backward_flops(query_shape, key_shape, value_shape)


# Formulas for kernels torch's own registry leaves at zero. Keys are op overload packets, as
# FlopCounterMode's ``custom_mapping`` expects; formulas take shapes (FlopCounterMode wraps them).
# The CUDA backward kernels are counted by torch with the recomputed scores (5 matmuls); they are
# re-registered here as twice the forward, so that MFU means the same thing on every device.
EXTRA_FORMULAS: dict[Any, Callable[..., int]] = {
    aten._scaled_dot_product_flash_attention_for_cpu: _attention_forward,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward,
    aten._scaled_dot_product_flash_attention_backward: _attention_backward,
    aten._scaled_dot_product_efficient_attention_backward: _attention_backward,
    aten._scaled_dot_product_cudnn_attention_backward: _attention_backward,
}


def flop_counter() -> FlopCounterMode:
    """A quiet ``FlopCounterMode`` that also counts the CPU flash-attention kernels.

    Usage::

        with flop_counter() as counter:
            loss = model(x).sum(); loss.backward()
        counter.get_total_flops()
    """
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)


def count_flops(fn: Callable[[], Any]) -> tuple[int, dict[str, int]]:
    """Run ``fn()`` once under :func:`flop_counter`.

    Returns:
        ``(total, by_op)``: total FLOPs and FLOPs per aten op name (e.g. ``"mm"``).
    """
    with flop_counter() as counter:
        fn()
    by_op = {str(op): int(n) for op, n in counter.get_flop_counts()["Global"].items()}
    return counter.get_total_flops(), by_op


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    size: int | None = None,
    repeats: int = 5,
) -> float:
    """Best measured FLOP/s of a square ``size``³ matmul in ``dtype`` on ``device``.

    The best of ``repeats`` timed calls (after one warm-up call) is reported: on a shared machine
    the fastest call is the closest to what the hardware can do. ``size`` defaults to 2048 on CPU
    and 8192 on CUDA (a GPU needs a bigger problem to reach its peak).

    Raises:
        ValueError: a dtype the device cannot multiply, or a size/repeats below 1.
    """
    device = torch.device(device)
    size = int(size or (8192 if device.type == "cuda" else 2048))
    if size < 1 or repeats < 1:
        raise ValueError(f"matmul_peak needs size >= 1 and repeats >= 1, got size={size}, repeats={repeats}")
    try:
        a = torch.randn(size, size, device=device).to(dtype)
        b = torch.randn(size, size, device=device).to(dtype)
        a @ b  # warm-up: kernel selection, page faults, clocks
    except RuntimeError as err:
        raise ValueError(f"cannot run a {dtype} matmul on {device}: {err}") from err
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best
