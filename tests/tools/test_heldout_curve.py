"""The held-out curve tool: reference levels first, the loss at the asked steps, one-line errors."""

from __future__ import annotations

import pytest

from tools.heldout_curve import CurveSettings, heldout_curve, main


def test_curve_reports_references_and_requested_steps() -> None:
    out = heldout_curve(CurveSettings(pos_embed="sincos_3d", steps=3, eval_every=2, batch_size=2, val_clips=2,
                                      mask_ratio_start=0.5, ramp_steps=2))
    assert set(out["curve"]) == {2, 3}
    refs = out["references"]
    assert 0 < refs["static_background"] < refs["mean_colour"]
    assert all(loss > 0 for loss in out["curve"].values())
    # The groups split the masked tokens: their shares sum to 1 and weight the group means into the loss.
    shares = out["group_shares"]
    assert set(shares) == {"shape", "background_seen", "background_hidden"} and sum(shares.values()) == pytest.approx(1)
    for step, loss in out["curve"].items():
        present = {g: v for g, v in out["groups"][step].items() if shares[g] > 0}
        assert sum(shares[g] * v for g, v in present.items()) == pytest.approx(loss, rel=1e-5)
    level = out["reference_groups"]["static_background"]
    for group in ("background_seen", "background_hidden"):
        assert shares[group] == 0 or level[group] == 0  # the static background is exact off the shapes
    assert shares["shape"] > 0 and level["shape"] > 0
    assert sum(shares[g] * v for g, v in level.items() if shares[g] > 0) == pytest.approx(refs["static_background"], rel=1e-5)


def test_bad_ratio_is_one_line(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--mask-ratio", "1.5"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == "error: --mask-ratio must be in (0, 1), got 1.5"
