"""``compile_blocks``: a compiler that fails, early or at the first call, leaves the model running eagerly."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.models.presets import build_mae
from adamae_rl.utils import compile as compile_module
from adamae_rl.utils.compile import compile_blocks

SMALL = dict(img_size=32, num_frames=8)  # grid (4, 4, 4): 64 tokens


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

    monkeypatch.setattr(compile_module.torch, "compile", broken_compile)
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

    monkeypatch.setattr(compile_module.torch, "compile", no_toolchain)
    model = build_mae("tiny", **SMALL)
    with pytest.warns(RuntimeWarning, match=r"torch.compile is not usable here \(OSError: gcc: not found\); running eagerly"):
        assert compile_blocks(model) is False
    assert "forward" not in vars(model.blocks[0])
