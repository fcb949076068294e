"""``torch.compile`` for the transformer blocks, with a fallback to eager execution."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from adamae_rl.models.videomae import Block


def compile_blocks(module: nn.Module) -> bool:
    """Compile every transformer :class:`Block` inside ``module`` with ``torch.compile`` (inductor).

    A tiny function is compiled and differentiated first, so that a missing toolchain (no C++
    compiler, no Python headers) is found at once: then nothing is compiled, one warning says
    why, and the module runs eagerly. A block that still fails to compile at its first call runs
    that call and every later one eagerly, after one warning (a block holds no state besides its
    parameters, so running it again is safe). Parameter names and state dicts are unchanged.

    Returns:
        True when the blocks were set up for compiling, False when it fell back to eager.
    """
    failure: dict[str, str] = {}  # shared by the blocks: after one failure, none tries again
    probe_error = _compile_probe()
    if probe_error:
        warnings.warn(f"torch.compile is not usable here ({probe_error}); running eagerly", RuntimeWarning, stacklevel=2)
        return False
    for block in (m for m in module.modules() if isinstance(m, Block)):
        block.forward = _compiled_or_eager(block.forward, failure)
    return True


def _compile_probe() -> str | None:
    """None when inductor can compile and differentiate a small function here, else the error."""
    try:
        x = torch.linspace(0.0, 1.0, 8, requires_grad=True)
        torch.compile(lambda t: torch.sin(t) * 2.0 + 1.0)(x).sum().backward()
    except Exception as err:  # noqa: BLE001 - any failure means compiling is not usable
        return _one_line(err)
    return None


def _one_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _compiled_or_eager(eager, failure: dict[str, str]):
    compiled = torch.compile(eager)

    def forward(x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if not failure:
            try:
                return compiled(x, bias)
            except Exception as err:  # noqa: BLE001 - whatever stops compiling, the block runs eagerly
                failure["error"] = _one_line(err)
                warnings.warn(f"torch.compile failed ({failure['error']}); running eagerly", RuntimeWarning, stacklevel=2)
        return eager(x, bias)

    return forward
