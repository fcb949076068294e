"""decord video dataset: list files, temporal sampling, crops, masks, determinism."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_memory import run_limited

from adamae_rl.data.factory import ClipGeometry, make_dataset
from adamae_rl.data.loader import SKIPPED_KEY
from adamae_rl.data.synthetic import pixel_mask_to_tokens
from adamae_rl.data.transforms import denormalize
from adamae_rl.errors import InputFileError
from adamae_rl.utils.files import MAX_TEXT_INPUT_BYTES
from adamae_rl.data.video import (
    BadVideoError,
    SamplingOptions,
    VideoClips,
    VideoEntry,
    VideoReadError,
    build_video_dataset,
    dense_indices,
    load_fg_mask,
    read_video_list,
    save_fg_mask,
    segment_indices,
)

NUM_TOKENS = 4 * 4 * 4  # conftest geometry: (8 / 2) x (32 / 8) x (32 / 8)


@pytest.fixture
def clips(geometry: ClipGeometry):
    """``clips(path, train=True, **sampling_options)``: a one-video dataset, label 3."""

    def make(path: Path, train: bool = True, **options) -> VideoClips:
        return VideoClips([VideoEntry(str(path), 3)], geometry, SamplingOptions(**options), train=train)

    return make


# --------------------------------------------------------------------------- list files


def test_list_forms_blank_lines_and_path_resolution(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    list_file = lists / "train.txt"
    list_file.write_text("a/x.mp4 3\n\n   \n/abs/y.mp4 0 -1\nz.mp4 7\n")

    entries = read_video_list(list_file)
    assert entries == [
        VideoEntry(str(lists / "a/x.mp4"), 3),
        VideoEntry("/abs/y.mp4", -1),
        VideoEntry(str(lists / "z.mp4"), 7),
    ]
    assert read_video_list(list_file, root="/data")[0].path == "/data/a/x.mp4"


@pytest.mark.parametrize("bad", ["x.mp4", "x.mp4 cat", "x.mp4 1 2 3", "x.mp4 5 100"])
def test_malformed_line_names_file_and_line(tmp_path: Path, bad: str) -> None:
    list_file = tmp_path / "train.txt"
    list_file.write_text(f"ok.mp4 1\n\n{bad}\n")
    with pytest.raises(ValueError, match=f"{list_file}:3"):
        read_video_list(list_file)


def test_missing_or_empty_list(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_video_list(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="no videos"):
        read_video_list(tmp_path / "empty.txt")


# --------------------------------------------------------------------------- index sampling


def test_dense_indices() -> None:
    assert dense_indices(100, 8, 4, None).tolist() == list(range(35, 64, 4))  # centre window
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = dense_indices(40, 8, 4, rng)
        assert (np.diff(idx) == 4).all() and idx[0] >= 0 and idx[-1] < 40
    # Too short for the full window: the stride shrinks, frames never repeat.
    assert np.diff(dense_indices(20, 8, 4, None)).tolist() == [2] * 7
    assert dense_indices(8, 8, 4, None).tolist() == list(range(8))
    with pytest.raises(VideoReadError, match="too short"):
        dense_indices(7, 8, 4, None)


def test_segment_indices() -> None:
    assert segment_indices(80, 8, None).tolist() == [4, 14, 24, 34, 44, 54, 64, 74]
    rng = np.random.default_rng(0)
    for length in (8, 13, 80):
        idx = segment_indices(length, 8, rng).tolist()
        edges = [i * length // 8 for i in range(9)]  # 8 equal segments, one frame from each
        assert all(edges[i] <= idx[i] < edges[i + 1] for i in range(8))
    with pytest.raises(VideoReadError, match="too short"):
        segment_indices(7, 8, rng)


# --------------------------------------------------------------------------- decoded clips


@pytest.mark.parametrize("mode", ["dense", "segments"])
def test_decoded_frames_are_the_promised_indices(gray_video, frame_ids, clips, mode: str) -> None:
    path = gray_video("gray", 40)
    train = clips(path, temporal_mode=mode, sampling_rate=4)
    for draw_seed in range(6):
        rng = np.random.default_rng(draw_seed)  # the dataset draws the window first
        want = dense_indices(40, 8, 4, rng) if mode == "dense" else segment_indices(40, 8, rng)
        assert frame_ids(train[(0, draw_seed)]["video"]) == want.tolist()
    val = clips(path, train=False, temporal_mode=mode)
    centre = dense_indices(40, 8, 4, None) if mode == "dense" else segment_indices(40, 8, None)
    assert frame_ids(val[(0, 123)]["video"]) == centre.tolist()


def test_item_shapes_and_ranges(gray_video, clips) -> None:
    item = clips(gray_video("gray", 40))[(0, 5)]
    assert item["video"].shape == (3, 8, 32, 32) and item["video"].dtype == torch.float32
    pixels = denormalize(item["video"])
    assert pixels.min() >= -1e-4 and pixels.max() <= 1 + 1e-4
    assert item["label"].dtype == torch.int64 and item["label"].shape == () and int(item["label"]) == 3
    assert item[SKIPPED_KEY] == [] and "fg_tokens" not in item  # no mask beside this video


def test_same_key_same_clip_other_key_other_crop(square_video, clips) -> None:
    dataset = clips(square_video, flip=True)
    a, b = dataset[(0, 11)], dataset[(0, 11)]
    assert torch.equal(a["video"], b["video"]) and torch.equal(a["fg_tokens"], b["fg_tokens"])
    assert any(not torch.equal(a["video"], dataset[(0, s)]["video"]) for s in range(12, 16))


def test_mask_follows_crop_resize_and_flip(square_video, clips, geometry) -> None:
    """The white square's pixels and the on-disk mask must land on the same tokens."""
    dataset = clips(square_video, flip=True, scales=(1.0, 0.75, 0.5), sampling_rate=2)
    for draw_seed in range(12):
        item = dataset[(0, draw_seed)]
        bright = denormalize(item["video"]).mean(0) > 0.5  # [T, H, W]
        from_pixels = pixel_mask_to_tokens(bright, geometry.patch_size, geometry.tubelet_size)
        assert item["fg_tokens"].shape == (NUM_TOKENS,)
        assert from_pixels.sum() > 0
        # Bilinear edges can flip a border token; the mask is "any pixel", so it may only add.
        assert (from_pixels & ~item["fg_tokens"]).sum() == 0
        assert (item["fg_tokens"] != from_pixels).float().mean() < 0.1


def test_decode_short_side_keeps_geometry_and_mask(square_video, clips) -> None:
    full = clips(square_video, train=False)[(0, 0)]
    small = clips(square_video, train=False, decode_short_side=24)[(0, 0)]  # decodes 32x24
    assert small["video"].shape == full["video"].shape
    assert (small["fg_tokens"] != full["fg_tokens"]).float().mean() < 0.1


def test_repeated_sampling_decodes_once_draws_many(gray_video, frame_ids, clips) -> None:
    item = clips(gray_video("gray", 40), repeat=3)[(0, 2)]
    assert item["video"].shape == (3, 3, 8, 32, 32) and item["label"].tolist() == [3, 3, 3]
    windows = {tuple(frame_ids(v)) for v in item["video"]}
    assert len(windows) > 1  # each repeat draws its own window


def test_build_from_config_and_factory(tmp_path: Path, gray_video, write_list, geometry) -> None:
    list_file = write_list(tmp_path / "train.txt", [gray_video("gray", 40)], label=2)
    cfg = {"name": "video", "train_list": str(list_file), "temporal_mode": "segments", "repeat": 2}
    dataset = make_dataset(cfg, "train", geometry, seed=0)
    assert isinstance(dataset, VideoClips) and dataset.clips_per_item == 2
    assert dataset.options.temporal_mode == "segments"
    with pytest.raises(ValueError, match="data.train_list is not set"):
        build_video_dataset({"name": "video"}, split="train", geometry=geometry, seed=0)
    val = build_video_dataset(cfg, split="val", geometry=geometry, seed=0)  # falls back to train_list
    assert not val.train and val.clips_per_item == 1 and val.entries == dataset.entries
    with pytest.raises(ValueError, match="not divisible"):
        VideoClips([VideoEntry("x.mp4", 0)], ClipGeometry(7, 32, 8, 2))
    with pytest.raises(ValueError, match="temporal_mode"):
        SamplingOptions(temporal_mode="sparse")


def test_list_must_be_a_bounded_regular_file(tmp_path: Path) -> None:
    # /dev/zero used to be read until memory ran out: now refused before reading, under a 256 MiB cap.
    result = run_limited("""
        from adamae_rl.data.video import read_video_list
        limit_memory(256)
        try:
            read_video_list("/dev/zero")
        except Exception as err:
            print(type(err).__name__, err)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "InputFileError video list /dev/zero is a device, not a regular file"
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)  # reading a FIFO with no writer used to block forever
    with pytest.raises(InputFileError, match="is a FIFO, not a regular file"):
        read_video_list(fifo)
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(MAX_TEXT_INPUT_BYTES + 1)  # sparse: no disk used
    with pytest.raises(InputFileError, match="larger than 256 MiB"):
        read_video_list(big)


def _hostile_mask(path: Path, shape: list[int], packed_len: int = 16) -> None:
    np.savez_compressed(path, packed=np.zeros(packed_len, dtype=np.uint8), shape=np.array(shape))


def test_mask_header_is_checked_before_the_mask_is_read(square_video: Path, geometry, tmp_path: Path) -> None:
    mask_path = square_video.with_suffix(".fg.npz")
    mask_path.unlink()
    # A few hundred bytes that claim [24, 6000, 6000]: unpacking used to cost 2.3 GB for one item.
    _hostile_mask(mask_path, [24, 6000, 6000])
    assert mask_path.stat().st_size < 1000
    list_file = tmp_path / "list.txt"
    list_file.write_text(f"{square_video.name} 0\n")
    result = run_limited(f"""
        from adamae_rl.data.video import VideoClips, read_video_list
        from adamae_rl.geometry import ClipGeometry
        clips = VideoClips(read_video_list({str(list_file)!r}), ClipGeometry(8, 32, 8, 2), strict=True)
        limit_memory(400)
        try:
            clips[(0, 0)]
        except Exception as err:
            print(type(err).__name__, err)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BadVideoError bad video" in result.stdout and "mask shape 24x6000x6000" in result.stdout
    assert "more than 268435456" in result.stdout


@pytest.mark.parametrize("shape, packed, needle", [
    ([24, 48, 64], 5, "5 packed bytes do not match mask shape 24x48x64"),  # the bits do not match the claimed shape
    ([24, 48], 9216, "'shape' must hold three integers"),
    ([24, 0, 64], 1, "positive sides"),
])
def test_malformed_mask_headers_are_named(tmp_path: Path, shape: list[int], packed: int, needle: str) -> None:
    path = tmp_path / "m.fg.npz"
    _hostile_mask(path, shape, packed)
    with pytest.raises(InputFileError) as err:
        load_fg_mask(path)
    assert needle in str(err.value)


def test_mask_of_another_aspect_or_length_is_refused(square_video: Path, geometry) -> None:
    mask_path = square_video.with_suffix(".fg.npz")
    strict = VideoClips([VideoEntry(str(square_video), 3)], geometry, strict=True)
    for shape, needle in (([24, 64, 48], "is 64x48, video frames are 48x64"), ([23, 48, 64], "video has 24 frames")):
        save_fg_mask(mask_path, torch.zeros(shape, dtype=torch.bool))
        with pytest.raises(BadVideoError, match=needle):
            strict[(0, 0)]
    save_fg_mask(mask_path, torch.zeros([24, 24, 32], dtype=torch.bool))  # half the resolution: fine
    assert strict[(0, 0)]["fg_tokens"].shape == (NUM_TOKENS,)


def _large_video(path: Path, side: int, frames: int) -> None:
    """A gradient video of ``side`` x ``side``, written frame by frame (never held whole)."""
    import av

    ramp = np.linspace(0, 255, side).astype(np.int64)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "bf": "0"}
        for t in range(frames):
            row = ((ramp + 9 * t) % 256).astype(np.uint8)
            image = np.broadcast_to(row[:, None, None], (side, side, 3)).copy()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


@pytest.mark.parametrize("decode_short_side, fits", [("auto", True), (None, False)])
def test_large_video_decodes_at_the_size_training_needs(tmp_path: Path, decode_short_side, fits: bool) -> None:
    # 10 frames of 2000x2000: native decoding (and the float crop) needs far more than 300 MiB;
    # the default decodes at img_size / min(scales) = 32 / 0.66 -> 50 px and stays well inside.
    path = tmp_path / "large.mp4"
    _large_video(path, 2000, 10)
    result = run_limited(f"""
        from adamae_rl.data.video import VideoClips, VideoEntry, sampling_options
        from adamae_rl.geometry import ClipGeometry
        options = sampling_options({{"decode_short_side": {decode_short_side!r}}}, True, 32)
        clips = VideoClips([VideoEntry({str(path)!r}, 0)], ClipGeometry(8, 32, 8, 2), options, strict=True)
        limit_memory(300)
        try:
            item = clips[(0, 0)]
            print("ok", options.decode_short_side, tuple(item["video"].shape))
        except Exception as err:
            print(type(err).__name__)
    """, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    if fits:
        assert result.stdout.strip() == "ok 50 (3, 8, 32, 32)"
    else:  # the limit is real: without scaling the same read does not fit
        assert result.stdout.strip() in ("MemoryError", "BadVideoError"), result.stdout


def test_decode_size_rules() -> None:
    from adamae_rl.data.video import MAX_DECODED_BYTES, _check_decode_bytes, resolve_decode_short_side

    assert resolve_decode_short_side("auto", 224, (1.0, 0.875, 0.75, 0.66)) == 340  # ceil(339.4), even
    assert resolve_decode_short_side("auto", 32, (1.0,)) == 32
    assert resolve_decode_short_side(None, 224, (0.5,)) is None and resolve_decode_short_side(96, 224, (0.5,)) == 96
    _check_decode_bytes(16, (640, 360))
    with pytest.raises(VideoReadError, match=r"10 frames of 4000x4000 would take 0.4 GiB to decode; set data.decode_short_side"):
        _check_decode_bytes(10, (4000, 4000))
    assert 10 * 4000 * 4000 * 3 > MAX_DECODED_BYTES
