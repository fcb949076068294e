"""Label sets of the synthetic clips."""

from __future__ import annotations

import pytest
import torch

from adamae_rl.data.synthetic import (
    LABELS, SHAPES, SyntheticClips, clip_label, num_label_classes, render_clip, render_clip_facts,
)

GEOMETRY = dict(num_frames=8, img_size=32, patch_size=8, tubelet_size=2)


def test_every_label_set_is_in_range_and_uses_the_clip_facts() -> None:
    seen = {label: set() for label in LABELS}
    for index in range(24):
        pixels, _, facts = render_clip_facts(0, index, 8, 32)
        old_pixels, _, direction = render_clip(0, index, 8, 32)
        assert torch.equal(pixels, old_pixels) and facts.direction == direction
        largest = facts.kinds[max(range(len(facts.radii)), key=facts.radii.__getitem__)]
        assert clip_label(facts, "shape", 32) == largest
        assert clip_label(facts, "count", 32) == len(facts.kinds) - 1
        assert clip_label(facts, "direction_shape", 32) == direction * len(SHAPES) + largest
        for label in LABELS:
            value = clip_label(facts, label, 32)
            assert 0 <= value < num_label_classes(label)
            seen[label].add(value)
    assert all(len(values) >= 2 for values in seen.values())  # every label set varies across clips


def test_dataset_label_option_and_class_count() -> None:
    clips = SyntheticClips(num_clips=6, label="count", max_shapes=2, **GEOMETRY)
    assert clips.num_classes == 2
    assert [int(clips[i]["label"]) for i in range(6)] == [
        len(render_clip_facts(0, i, 8, 32, 2)[2].kinds) - 1 for i in range(6)
    ]


def test_unknown_label_set_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"label must be one of direction, shape, count, speed, direction_shape; got 'colour'"):
        SyntheticClips(num_clips=1, label="colour", **GEOMETRY)
