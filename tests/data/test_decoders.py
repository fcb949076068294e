"""Decoder backends: same frames for the same indices, same resize, clear errors, auto choice."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_cli import run_cli

from adamae_rl.data import decoders
from adamae_rl.data.decoders import (
    BACKENDS,
    DecoderUnavailable,
    VideoReadError,
    available_backends,
    open_video,
    read_frames,
    resolve_decoder,
    scaled_size,
)
from adamae_rl.data.make_synthetic import main as make_synthetic
from adamae_rl.data.make_synthetic import write_video
from adamae_rl.data.synthetic import render_clip
from adamae_rl.data.video import SamplingOptions, VideoClips, VideoEntry, dense_indices

# Tolerances, in 8-bit levels. At the native size every backend runs the same FFmpeg decoder and
# the same YUV->RGB conversion: frames agree to the level. Scaled at decode time, backends scale in
# different places (decord and PyAV: one swscale call from YUV; torchcodec: a filter graph after
# the RGB conversion), all bilinear: sharp shape edges differ, the rest agrees closely.
NATIVE_MAX_DIFF = 2
SCALED_MEAN_DIFF = 2.5
SCALED_BIG_DIFF, SCALED_BIG_SHARE = 32, 0.02  # at most 2% of values differ by more than 32 levels
# Against the rendered pixels, H.264 at crf 12 (make_synthetic) loses little.
CODEC_MEAN_DIFF = 3.0


@pytest.fixture(scope="module")
def textured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.Tensor]:
    """A moving-shapes video 40 frames of 72x96 and its rendered pixels uint8 ``[T, H, W, 3]``."""
    pixels, _, _ = render_clip(0, 3, 40, 96, 3)
    pixels = pixels[:, :, :72, :]  # not square, so width and height cannot be swapped unnoticed
    path = tmp_path_factory.mktemp("textured") / "shapes.mp4"
    write_video(path, pixels)
    rendered = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0)
    return path, rendered


def windows() -> list[list[int]]:
    """Clip windows as training draws them (8 frames, stride 4) plus one spanning the video."""
    rng = np.random.default_rng(0)
    return [dense_indices(40, 8, 4, rng).tolist() for _ in range(3)] + [[0, 1, 2, 13, 26, 38, 39]]


def decode(path: Path, backend: str, indices: list[int], short_side: int | None = None) -> torch.Tensor:
    with open_video(str(path), backend, short_side) as video:
        assert video.num_frames == 40
        return read_frames(video, indices)


def test_every_backend_decodes_the_rendered_frames(textured, decoder: str) -> None:
    path, rendered = textured
    for window in windows():
        frames = decode(path, decoder, window)
        assert frames.dtype == torch.uint8 and frames.shape == (len(window), 72, 96, 3)
        diff = (frames.int() - rendered[window].int()).abs().float()
        assert diff.mean() < CODEC_MEAN_DIFF, (window, float(diff.mean()))


@pytest.mark.parametrize("short_side", [None, 48, 24])
def test_backends_give_the_same_frames_as_pyav(textured, decoder: str, short_side: int | None) -> None:
    if decoder == "pyav":
        pytest.skip("the reference itself (checked against the rendered pixels above)")
    path, _ = textured
    for window in windows():
        frames, reference = decode(path, decoder, window, short_side), decode(path, "pyav", window, short_side)
        assert frames.shape == reference.shape
        diff = (frames.int() - reference.int()).abs().float()
        if short_side is None:
            assert diff.max() <= NATIVE_MAX_DIFF, (window, float(diff.max()))
        else:
            assert frames.shape[1:3] == (short_side, short_side * 4 // 3)
            assert diff.mean() <= SCALED_MEAN_DIFF, (window, float(diff.mean()))
            assert (diff > SCALED_BIG_DIFF).float().mean() <= SCALED_BIG_SHARE


def test_decode_size_for_square_videos(tmp_path: Path, decoder: str) -> None:
    """64x64 scaled to 48x48: a width at which decord 0.6's batch read breaks without a fix."""
    pixels, _, _ = render_clip(0, 1, 12, 64, 2)
    write_video(tmp_path / "square.mp4", pixels)
    frames = decode_any(tmp_path / "square.mp4", decoder, [0, 5, 11], 48)
    assert frames.shape == (3, 48, 48, 3)
    reference = decode_any(tmp_path / "square.mp4", "pyav", [0, 5, 11], 48)
    assert (frames.int() - reference.int()).abs().float().mean() <= SCALED_MEAN_DIFF


def decode_any(path: Path, backend: str, indices: list[int], short_side: int | None) -> torch.Tensor:
    with open_video(str(path), backend, short_side) as video:
        return read_frames(video, indices)


def test_dataset_reads_the_promised_frames_with_every_backend(gray_video, frame_ids, geometry, decoder: str) -> None:
    path = gray_video("gray", 40)
    dataset = VideoClips([VideoEntry(str(path), 0)], geometry, SamplingOptions(decoder=decoder), train=True)
    assert dataset.decoder == decoder
    for draw_seed in range(4):
        want = dense_indices(40, 8, 4, np.random.default_rng(draw_seed)).tolist()
        assert frame_ids(dataset[(0, draw_seed)]["video"]) == want


def test_pyav_reads_in_order_when_timestamps_are_missing(textured) -> None:
    path, _ = textured
    with open_video(str(path), "pyav") as seeking, open_video(str(path), "pyav") as ordered:
        assert not seeking.sequential
        ordered.sequential = True  # what packets without timestamps switch on
        for window in windows():  # the last window starts at 0: the ordered reader starts over
            assert torch.equal(read_frames(ordered, window), read_frames(seeking, window))


def test_scaled_size() -> None:
    assert scaled_size(640, 360, None) is None and scaled_size(640, 360, 400) is None
    assert scaled_size(640, 360, 180) == (320, 180)
    assert scaled_size(341, 256, 128) == (170, 128)  # even sides


def test_reading_past_the_end_is_a_read_error(textured, decoder: str) -> None:
    with open_video(str(textured[0]), decoder) as video, pytest.raises(VideoReadError, match="decoding failed"):
        read_frames(video, [38, 45])


# --------------------------------------------------------------------------- choosing a backend


@pytest.fixture
def fresh_choice(monkeypatch: pytest.MonkeyPatch):
    """Forget which backends work and which choice was announced; ``hide(name)`` blocks an import."""
    monkeypatch.setattr(decoders, "_availability", {})
    monkeypatch.setattr(decoders, "_announced", set())

    def hide(*modules: str) -> None:
        for module in modules:
            monkeypatch.setitem(sys.modules, module, None)  # "import module" now raises ImportError

    return hide


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown data.decoder 'ffmpeg'; known: auto, decord, torchcodec, pyav"):
        resolve_decoder("ffmpeg")
    with pytest.raises(ValueError, match="unknown data.decode_device 'tpu'; known: cpu, cuda"):
        resolve_decoder("auto", "tpu")
    with pytest.raises(ValueError, match="decode_device=cuda needs data.decoder=torchcodec"):
        resolve_decoder("pyav", "cuda")


@pytest.mark.parametrize(("backend", "hint"), [("decord", "pip install decord"), ("torchcodec", r"adamae_rl\[torchcodec\]")])
def test_missing_backend_says_what_installs_it(fresh_choice, backend: str, hint: str) -> None:
    fresh_choice(backend, f"{backend}.decoders")
    with pytest.raises(DecoderUnavailable, match=rf"video decoder '{backend}' cannot run here \(.*Error.*" + hint):
        resolve_decoder(backend)


def test_auto_prefers_decord_then_torchcodec_then_pyav(fresh_choice, caplog: pytest.LogCaptureFixture) -> None:
    fresh_choice("decord", "torchcodec", "torchcodec.decoders")
    with caplog.at_level(logging.INFO, logger="adamae_rl.data"):
        assert resolve_decoder("auto") == "pyav"
        assert resolve_decoder("auto") == "pyav"
    said = [r.getMessage() for r in caplog.records if "video decoder" in r.getMessage()]
    assert len(said) == 1 and "pyav" in said[0] and "decord: ModuleNotFoundError" in said[0]


def test_auto_takes_the_first_that_works(fresh_choice) -> None:
    works = available_backends()
    assert works and works[-1] == "pyav"  # PyAV is a dependency: always there
    assert resolve_decoder("auto") == works[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_decoding_without_a_gpu_is_refused() -> None:
    if "torchcodec" not in available_backends():
        pytest.skip("torchcodec is not installed here")
    with pytest.raises(DecoderUnavailable, match="no CUDA device"):
        resolve_decoder("torchcodec", "cuda")


@pytest.mark.skipif(not os.environ.get("CI"), reason="CI installs every backend; elsewhere they are optional")
def test_ci_runs_every_backend() -> None:
    missing = {name: decoders.backend_problem(name) for name in BACKENDS if name not in available_backends()}
    assert not missing, f"CI must install every decoder backend: {missing}"


# --------------------------------------------------------------------------- without decord

# Put first on PYTHONPATH, this makes the named packages look uninstalled: every import finder
# answers "not found" for them (importlib.util.find_spec gives None, import raises
# ModuleNotFoundError), as on a machine where they have no wheels.
HIDE_MODULES = """
import os, sys

class _Hiding:
    hidden = set(os.environ.get("HIDE_MODULES", "").split(","))

    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self.finder, attr)

sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
"""


@pytest.mark.slow
@pytest.mark.parametrize("hidden", ["decord", "decord,torchcodec"])
def test_trains_without_decord(tmp_path: Path, hidden: str) -> None:
    """Without decord (and torchcodec), as on a machine without their wheels, training still runs."""
    make_synthetic([str(tmp_path / "shapes"), "--num-videos", "8", "--frames", "24", "--size", "32"])
    hide_dir = tmp_path / "hide"
    hide_dir.mkdir()
    (hide_dir / "sitecustomize.py").write_text(HIDE_MODULES)
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(hide_dir), os.environ.get("PYTHONPATH")])),
           "HIDE_MODULES": hidden}
    check = run_cli("decord", cwd=tmp_path, extra_env=env)  # python -m decord: the hiding is active
    assert "No module named decord" in check.stderr
    expected = "pyav" if "torchcodec" in hidden or "torchcodec" not in available_backends() else "torchcodec"

    result = run_cli(
        "adamae_rl.train", "experiment=smoke", "data=video", "data.train_list=shapes/train.txt", "data.num_workers=1",
        "run_dir=run", "trainer.max_steps=6", "trainer.eval_every=6", "trainer.log_every=3", cwd=tmp_path, extra_env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["data"] == "video" and summary["final_loss_recon"] > 0
    log_text = (tmp_path / "run" / "train.log").read_text()
    assert f"video decoder: {expected} on cpu" in log_text and "decord: ModuleNotFoundError" in log_text
    if hidden != "decord,torchcodec":
        return
    named = run_cli(
        "adamae_rl.train", "experiment=smoke", "data=video", "data.train_list=shapes/train.txt", "data.decoder=decord",
        "run_dir=named", cwd=tmp_path, extra_env=env,
    )
    errors = [line for line in named.stderr.splitlines() if line.startswith("error:")]
    assert named.returncode == 2 and len(errors) == 1 and "pip install decord" in errors[0], named.stderr[-2000:]
