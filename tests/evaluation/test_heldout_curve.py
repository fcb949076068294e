"""The held-out curve tool: reference levels first, the loss at the asked steps, one-line errors."""

from __future__ import annotations

import pytest

from adamae_rl.evaluation.heldout_curve import CurveSettings, heldout_curve, main


def test_curve_reports_references_and_requested_steps() -> None:
    out = heldout_curve(CurveSettings(pos_embed="sincos_3d", steps=3, eval_every=2, batch_size=2, val_clips=2,
                                      mask_ratio_start=0.5, ramp_steps=2))
    assert set(out["curve"]) == {2, 3}
    refs = out["references"]
    assert 0 < refs["static_background"] < refs["mean_colour"]
    assert all(loss > 0 for loss in out["curve"].values())


def test_bad_ratio_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--mask-ratio", "1.5"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --mask-ratio must be in (0, 1), got 1.5"
