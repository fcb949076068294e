"""Batched rendering of the synthetic clips gives exactly the clip-by-clip results."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import default_collate

from adamae_rl.data import synthetic
from adamae_rl.data.loader import ClipStream
from adamae_rl.data.synthetic import BACKGROUNDS, SyntheticClips, render_background, render_batch, render_clip_facts

# Unsorted, with a repeat: the batch must not depend on the order or uniqueness of its indices.
INDICES = [0, 5, 3, 12, 5, 40, 41, 7]
GEOMETRY = {"num_frames": 8, "img_size": 32, "patch_size": 8, "tubelet_size": 2}


def _has_overlaps(seed: int, indices: list[int], frames: int, size: int, max_shapes: int) -> bool:
    """Whether two shapes of one clip cover the same pixel somewhere (so drawing order matters)."""
    draws = [synthetic._draw_clip(synthetic._clip_generator(seed, i), max_shapes) for i in indices]
    covered = synthetic._covered_pixels(synthetic._layout_shapes(draws, frames, size), frames, size)
    return covered.pixel.unique().numel() < covered.pixel.numel()


@pytest.mark.parametrize("background", BACKGROUNDS)
@pytest.mark.parametrize("frames, size", [(16, 64), (8, 32), (2, 8)])  # (2, 8): windows span the frame
@pytest.mark.parametrize("max_shapes", [1, 3])
@pytest.mark.parametrize("seed", [0, 7, 10_000])
def test_render_batch_equals_clip_by_clip(seed: int, max_shapes: int, frames: int, size: int, background: str) -> None:
    pixels, fg, facts = render_batch(seed, INDICES, frames, size, max_shapes, background)
    assert pixels.shape == (len(INDICES), 3, frames, size, size) and pixels.dtype == torch.float32
    assert fg.shape == (len(INDICES), frames, size, size) and fg.dtype == torch.bool
    for row, index in enumerate(INDICES):
        clip_pixels, clip_fg, clip_facts = render_clip_facts(seed, index, frames, size, max_shapes, background)
        assert torch.equal(pixels[row], clip_pixels), (seed, index)
        assert torch.equal(fg[row], clip_fg), (seed, index)
        assert facts[row] == clip_facts


def test_the_batches_above_overlap_shapes() -> None:
    # Compositing order is only tested where shapes overlap.
    assert _has_overlaps(0, INDICES, 16, 64, 3) and _has_overlaps(7, INDICES, 8, 32, 3)


def test_render_batch_of_no_clips() -> None:
    pixels, fg, facts = render_batch(0, [], 8, 32)
    assert pixels.shape == (0, 3, 8, 32, 32) and fg.shape == (0, 8, 32, 32) and facts == []


# Facts and foreground sizes of a few clips, pinned: the order of the random draws defines every
# clip, so changing it must show here.
PINNED = [
    ((0, 0, 16, 64, 3), 7, (2, 2, 1), (9.676218338012696, 6.968854370117187, 5.9085238265991205),
     (1.3032899856567384, 0.9808157205581666, 0.9664602518081665), 9114),
    ((5, 17, 8, 32, 3), 2, (2, 0), (2.9509468841552735, 3.94280029296875), (0.6417598724365234, 0.6621508836746216),
     732),
    ((10_000, 2, 8, 32, 1), 4, (0,), (4.400120372772217,), (0.48618502616882325,), 621),
]


@pytest.mark.parametrize("clip, direction, kinds, radii, speeds, fg_pixels", PINNED)
def test_clip_draws_are_pinned(
    clip: tuple[int, ...], direction: int, kinds: tuple, radii: tuple, speeds: tuple, fg_pixels: int
) -> None:
    seed, index, frames, size, max_shapes = clip
    _, fg, facts = render_clip_facts(*clip)
    assert facts == synthetic.ClipFacts(direction, kinds, radii, speeds)
    assert int(fg.sum()) == fg_pixels
    assert render_batch(seed, [index], frames, size, max_shapes)[2] == [facts]


# Pixel sums of a few clips per background, pinned. The "fine" sums were recorded from the renderer
# before data.background existed: that background is the previous data, pixel for pixel.
PINNED_SUMS = {
    "fine": {(0, 0, 16, 64, 3): 91689.267, (7, 5, 8, 32, 1): 10124.6368, (10_000, 41, 16, 64, 3): 116748.9885},
    "smooth": {(0, 0, 16, 64, 3): 94431.917, (7, 5, 8, 32, 1): 10260.2264, (10_000, 41, 16, 64, 3): 115563.0489},
}


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_pixels_are_pinned_per_background(background: str) -> None:
    for clip, total in PINNED_SUMS[background].items():
        pixels, fg, facts = render_clip_facts(*clip, background)
        assert float(pixels.double().sum()) == pytest.approx(total, abs=1e-3), clip
        # The background changes the pixels under no shape, and nothing else.
        other = render_clip_facts(*clip, "fine" if background == "smooth" else "smooth")
        assert torch.equal(fg, other[1]) and facts == other[2]
        assert torch.equal(pixels[:, fg], other[0][:, fg])


def test_smooth_background_varies_less_from_token_to_token() -> None:
    """The point of the smooth kind: neighbouring 8-pixel tokens' mean colours are close."""
    def neighbour_step(background: str) -> float:
        steps = []
        for index in range(8):
            frame = render_background(0, index, 2, 64, background)[:, 0]  # [3, 64, 64]
            tokens = frame.unfold(1, 8, 8).unfold(2, 8, 8).mean((-1, -2))  # [3, 8, 8]
            steps.append((tokens[:, :, 1:] - tokens[:, :, :-1]).abs().mean())
        return float(torch.stack(steps).mean())

    assert neighbour_step("smooth") < 0.5 * neighbour_step("fine")  # measured: 0.049 against 0.119


def test_unknown_background_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^background must be one of smooth, fine; got 'plain'$"):
        SyntheticClips(num_clips=1, background="plain", **GEOMETRY)
    with pytest.raises(ValueError, match=r"^background must be one of smooth, fine; got 'plain'$"):
        render_background(0, 0, 2, 8, "plain")


def _assert_same_items(items: list[dict], expected: list[dict]) -> None:
    assert len(items) == len(expected)
    for item, reference in zip(items, expected):
        assert item.keys() == reference.keys()
        for name, value in reference.items():
            assert item[name].dtype == value.dtype and torch.equal(item[name], value), name


@pytest.mark.parametrize("keys", [[4, 0, 49, 4], [(4, 123), (17, 5), (0, 0)]])
def test_getitems_equals_getitem(keys: list) -> None:
    clips = SyntheticClips(num_clips=50, seed=3, label="direction_shape", **GEOMETRY)
    _assert_same_items(clips.__getitems__(keys), [clips[key] for key in keys])


def test_getitems_keeps_to_an_overriding_getitem() -> None:
    class Flipped(SyntheticClips):
        def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
            item = super().__getitem__(key)
            return {**item, "video": item["video"].flip(-1)}

    clips = Flipped(num_clips=5, **GEOMETRY)
    _assert_same_items(clips.__getitems__([3, 1]), [clips[3], clips[1]])


def test_getitems_of_no_keys() -> None:
    assert SyntheticClips(num_clips=5, **GEOMETRY).__getitems__([]) == []


@pytest.mark.parametrize("key, index", [(50, 50), ((-1, 7), -1)])
def test_getitems_refuses_an_index_out_of_range(key: int | tuple[int, int], index: int) -> None:
    clips = SyntheticClips(num_clips=50, **GEOMETRY)
    with pytest.raises(IndexError, match=rf"index {index} out of range for 50 clips"):
        clips.__getitems__([1, key])


def test_clip_stream_renders_each_batch_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    getitems = SyntheticClips.__getitems__

    def recording(self: SyntheticClips, keys: list) -> list[dict]:
        calls.append(keys)
        return getitems(self, keys)

    monkeypatch.setattr(SyntheticClips, "__getitems__", recording)
    clips = SyntheticClips(num_clips=10, seed=1, **GEOMETRY)
    stream = ClipStream(clips, batch_size=4, seed=2)
    batch = next(stream)
    assert len(calls) == 1 and len(calls[0]) == 4
    expected = default_collate([clips[key] for key in calls[0]])
    assert batch.keys() == expected.keys()
    assert all(torch.equal(batch[name], expected[name]) for name in expected)
