"""Multi-view test clips: which frames and which crops each view reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adamae_rl.data.video import SamplingOptions, VideoClips, dense_indices, read_video_list, segment_indices
from adamae_rl.data.views import MultiViewClips, ViewSpec, dense_views, segment_views, spatial_views


def test_view_spec_parses_and_refuses() -> None:
    assert ViewSpec.parse("2x3") == ViewSpec(2, 3) and ViewSpec.parse(" 5 × 3 ").count == 15
    for bad, message in (("0x3", "at least 1 temporal"), ("2x", "must look like TxS"), ("two", "must look like TxS")):
        with pytest.raises(ValueError, match=message):
            ViewSpec.parse(bad)


def test_one_view_is_the_validation_clip() -> None:
    assert np.array_equal(dense_views(100, 8, 4, 1)[0], dense_indices(100, 8, 4, None))
    assert np.array_equal(segment_views(100, 8, 1)[0], segment_indices(100, 8, None))


def test_temporal_views_spread_over_the_video() -> None:
    windows = dense_views(100, 8, 4, 5)
    assert windows[0][0] == 0 and windows[-1][-1] == 99  # the first starts at the start, the last ends at the end
    assert all(np.all(np.diff(w) == 4) for w in windows)
    picks = segment_views(100, 8, 2)  # segments of 12-13 frames: a quarter and three quarters in
    edges = np.arange(9) * 100 // 8
    for pick in picks:
        assert np.all((pick >= edges[:-1]) & (pick < edges[1:]))
    assert np.all(picks[0] < picks[1])


def test_spatial_views_cover_the_long_side() -> None:
    boxes = spatial_views(48, 64, 3)
    assert [(b.top, b.left, b.height, b.width) for b in boxes] == [(0, 0, 48, 48), (0, 8, 48, 48), (0, 16, 48, 48)]
    assert spatial_views(64, 48, 1)[0] == (8, 0, 48, 48)


def test_multi_view_item_holds_every_view_in_order(tmp_path: Path, gray_video, write_list, geometry, frame_ids, decoder) -> None:
    video = gray_video("g", 40)
    clips = VideoClips(read_video_list(write_list(tmp_path / "l.txt", [video], label=3)), geometry,
                       SamplingOptions(sampling_rate=2, decoder=decoder), train=False)
    item = MultiViewClips(clips, ViewSpec(2, 3))[0]
    assert item["video"].shape == (6, 3, geometry.num_frames, geometry.img_size, geometry.img_size)
    assert int(item["label"]) == 3
    windows = dense_views(40, geometry.num_frames, 2, 2)
    for v in range(6):
        assert frame_ids(item["video"][v]) == windows[v // 3].tolist()
    # The centre view of the middle: the validation clip of a one-view test, pixel for pixel.
    single = MultiViewClips(clips, ViewSpec(1, 1))[0]["video"][0]
    assert torch.equal(single, clips[(0, 0)]["video"])
