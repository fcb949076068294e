"""Tiny on-disk videos for the video data tests, written with PyAV into ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from adamae_rl.data.decoders import BACKENDS, backend_problem
from adamae_rl.data.factory import ClipGeometry
from adamae_rl.data.make_synthetic import write_video
from adamae_rl.data.transforms import denormalize
from adamae_rl.data.video import save_fg_mask

# Frame i of a "gray" video is flat gray at level BASE + STEP * i: flat frames survive H.264
# almost exactly, so every decoded frame tells which source frame it came from.
BASE, STEP = 4, 6
GEOMETRY = ClipGeometry(num_frames=8, img_size=32, patch_size=8, tubelet_size=2)


def gray_pixels(num_frames: int, height: int, width: int) -> torch.Tensor:
    """float ``[3, T, H, W]`` in [0, 1]: frame i is flat gray level ``BASE + STEP * i``."""
    levels = (BASE + STEP * torch.arange(num_frames, dtype=torch.float32)) / 255
    return levels.view(1, num_frames, 1, 1).expand(3, num_frames, height, width).clone()


def _frame_ids(video: torch.Tensor) -> list[int]:
    """Source frame indices of a normalized gray clip ``[3, T, H, W]``."""
    levels = denormalize(video).mean(dim=(0, 2, 3)) * 255
    return ((levels - BASE) / STEP).round().long().tolist()


def _write_list(path: Path, videos: list[Path], label: int = 0) -> Path:
    """A VideoMAE list with absolute paths."""
    path.write_text("".join(f"{v} {label}\n" for v in videos))
    return path


@pytest.fixture(params=BACKENDS)
def decoder(request: pytest.FixtureRequest) -> str:
    """Each video decoder backend in turn; one that cannot run here is skipped, saying why."""
    problem = backend_problem(request.param)
    if problem is not None:
        pytest.skip(f"decoder {request.param} cannot run here: {problem}")
    return request.param


@pytest.fixture
def geometry() -> ClipGeometry:
    """A small model clip: 8 frames of 32x32, 8-pixel patches, tubelets of 2 (64 tokens)."""
    return GEOMETRY


@pytest.fixture
def frame_ids() -> Callable[[torch.Tensor], list[int]]:
    """Decodes which source frames a gray clip shows."""
    return _frame_ids


@pytest.fixture
def write_list() -> Callable[..., Path]:
    """``write_list(path, videos, label=0) -> path``."""
    return _write_list


@pytest.fixture
def gray_video(tmp_path: Path) -> Callable[..., Path]:
    """Writes a gray video: ``gray_video(name, num_frames, height=48, width=64) -> path``."""

    def make(name: str, num_frames: int, height: int = 48, width: int = 64) -> Path:
        path = tmp_path / f"{name}.mp4"
        write_video(path, gray_pixels(num_frames, height, width))
        return path

    return make


@pytest.fixture
def square_video(tmp_path: Path) -> Path:
    """A white square moving right over black, 24 frames 48x64, with its mask beside it."""
    frames, height, width = 24, 48, 64
    cols = torch.arange(width).view(1, 1, width)
    rows = torch.arange(height).view(1, height, 1)
    left = (2 * torch.arange(frames)).view(frames, 1, 1)
    fg = (cols >= left) & (cols < left + 12) & (rows >= 16) & (rows < 28)  # [T, H, W]
    path = tmp_path / "square.mp4"
    write_video(path, fg.float().unsqueeze(0).expand(3, -1, -1, -1))
    save_fg_mask(path.with_suffix(".fg.npz"), fg)
    return path


# Bad file kinds and a word their skip reason must contain (a truncated mp4 loses its index, so
# the decoder sees it like any other unreadable file).
BAD_REASONS = {
    "missing": "missing",
    "garbage": "cannot open",
    "truncated": "cannot open",
    "empty": "empty",
    "text": "text file",
    "short": "too short",
}


@pytest.fixture
def bad_reasons() -> dict[str, str]:
    return dict(BAD_REASONS)


@pytest.fixture
def bad_files(tmp_path: Path, gray_video: Callable[..., Path]) -> dict[str, Path]:
    """One file of each kind in ``BAD_REASONS``, by kind."""
    data = gray_video("source", 24).read_bytes()
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {kind: folder / f"{kind}.mp4" for kind in BAD_REASONS}
    files["garbage"].write_bytes(bytes(range(256)) * 16)
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("hello\n")  # FFmpeg's tty demuxer would show this as one frame
    files["short"] = gray_video("short", GEOMETRY.num_frames - 2)
    return files
