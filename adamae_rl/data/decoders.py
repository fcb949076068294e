"""Video decoders behind one interface: decord, torchcodec and PyAV.

``data.decoder`` picks one:

- ``decord`` -- the default where it installs (its wheels cover Linux x86-64 and Windows x86-64);
- ``torchcodec`` -- PyTorch's maintained decoder (``pip install 'adamae_rl[torchcodec]'``, needs
  FFmpeg's shared libraries on the system); the only one that can also decode on a CUDA device;
- ``pyav`` -- PyAV, a dependency anyway (clips are written with it), so always there;
- ``auto`` -- the first of decord, torchcodec, pyav that works here, named once in the log.

Every backend gives the same thing for the same request: uint8 frames ``[K, H, W, 3]`` (RGB) at
the requested frame indices, in presentation order, counted from the first frame; with a decode
size, frames scaled by FFmpeg's bilinear scaler at decode time. Frames of the same file agree
across backends up to codec and scaler rounding (``tests/data/test_decoders.py`` states the
tolerance). Every failure becomes :class:`VideoReadError` with a short reason, so a bad file is
skipped and counted the same way whichever backend read it.
"""

from __future__ import annotations

import io
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from adamae_rl.data.loader import DataError
from adamae_rl.errors import ConfigError

BACKENDS = ("decord", "torchcodec", "pyav")
# data.decoder=auto takes the first of these that works here.
AUTO_ORDER = BACKENDS
DEVICES = ("cpu", "cuda")

# How to get each backend, for the error that says it is missing.
INSTALL_HINTS = {
    "decord": "pip install decord (wheels exist for Linux x86-64 and Windows x86-64 only; elsewhere use "
    "data.decoder=torchcodec or data.decoder=pyav)",
    "torchcodec": "pip install 'adamae_rl[torchcodec]' (it also needs FFmpeg's shared libraries, e.g. "
    "apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 "
    "libavfilter8 on Debian 12; with the CPU build of torch 2.13 use torchcodec<0.14: later Linux wheels "
    "on PyPI need the CUDA build)",
    "pyav": "pip install av",
}

log = logging.getLogger("adamae_rl.data")


class VideoReadError(Exception):
    """One video cannot give a clip; the message is the reason (the caller knows the path)."""


class DecoderUnavailable(DataError):
    """A decoder backend was asked for by name but cannot run here."""


# --------------------------------------------------------------------------- file checks


def check_file(path: str) -> None:
    """Cheap checks that name the reason better than a decoder error would."""
    if not os.path.exists(path):
        if os.path.islink(path):  # exists() follows links: a loop or a dangling link is not "missing"
            raise VideoReadError("broken symbolic link or symbolic link loop")
        raise VideoReadError("missing file")
    if not os.path.isfile(path):
        raise VideoReadError("not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoReadError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoReadError("permission denied")
    if _looks_like_text(path):
        # FFmpeg would "decode" a text file as rendered terminal output, one frame or a few.
        raise VideoReadError("not a video (text file)")


def _looks_like_text(path: str) -> bool:
    """Printable ASCII in the first bytes: a list or note saved under a video's name."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    return bool(head) and all(32 <= b < 127 or b in b"\t\r\n" for b in head)


def short_reason(err: BaseException) -> str:
    """First line of a decoder error without decord's source-location prefix."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text.rsplit("] ", 1)[-1][:160]


def scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int] | None:
    """``(width, height)`` with the short side scaled down to ``short_side``; None keeps the size.

    Never scales up. Sides are even: yuv420 scalers round odd sizes anyway.
    """
    if short_side is None or min(width, height) <= short_side:
        return None
    ratio = short_side / min(width, height)
    return 2 * round(width * ratio / 2), 2 * round(height * ratio / 2)


def probe_size(path: str) -> tuple[int, int]:
    """``(width, height)`` of the first video stream, from the header only (PyAV)."""
    import av

    with av.open(path) as container:
        if not container.streams.video:
            raise VideoReadError("cannot open as video: no video stream")
        ctx = container.streams.video[0].codec_context
        return ctx.width, ctx.height


# --------------------------------------------------------------------------- the interface


class OpenVideo(ABC):
    """One opened video file.

    Attributes:
        num_frames: frames in the first video stream.
        frame_size: ``(width, height)`` of the frames as decoded (after any decode scaling).
    """

    num_frames: int
    frame_size: tuple[int, int]

    @abstractmethod
    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames at ``indices`` (strictly increasing, each in ``[0, num_frames)``).

        Returns:
            uint8 ``[len(indices), H, W, 3]``, RGB; on the decode device.
        """

    def close(self) -> None:
        """Release the file (the default relies on garbage collection)."""

    def __enter__(self) -> OpenVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_video(
    path: str,
    backend: str,
    decode_short_side: int | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> OpenVideo:
    """Open ``path`` with a resolved backend; any failure is a ``VideoReadError`` with a reason.

    Args:
        path: the video file.
        backend: one of ``BACKENDS`` (see :func:`resolve_decoder` for ``auto``).
        decode_short_side: scale frames at decode time so the short side is at most this.
        threads: decoder threads for this one file.
        device: ``cuda`` decodes on the GPU (torchcodec only).
    """
    check_file(path)
    try:
        native = probe_size(path)
        size = None if decode_short_side is None else scaled_size(*native, decode_short_side)
        video = _OPENERS[backend](path, size, threads, device)
    except VideoReadError:
        raise
    except Exception as err:  # each library raises its own types (RuntimeError, av.error.*, ...)
        raise VideoReadError(f"cannot open as video: {short_reason(err)}") from None
    if video.num_frames <= 0:
        raise VideoReadError("no video frames")
    video.frame_size = size or native
    return video


def read_frames(video: OpenVideo, indices: Sequence[int]) -> torch.Tensor:
    """``video.get_frames`` with decoder errors turned into ``VideoReadError``."""
    try:
        frames = video.get_frames(indices)
    except VideoReadError:
        raise
    except Exception as err:
        raise VideoReadError(f"decoding failed: {short_reason(err)}") from None
    if frames.shape[0] != len(indices):
        raise VideoReadError(f"decoding failed: got {frames.shape[0]} of {len(indices)} frames")
    return frames


# --------------------------------------------------------------------------- decord


class _DecordVideo(OpenVideo):
    def __init__(self, path: str, size: tuple[int, int] | None, threads: int, device: str) -> None:
        import decord

        width, height = size or (-1, -1)
        self.size = size
        self._reader = decord.VideoReader(path, ctx=decord.cpu(0), width=width, height=height, num_threads=threads)
        self.num_frames = len(self._reader)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        try:
            return torch.from_numpy(self._reader.get_batch(list(indices)).asnumpy())
        except Exception as err:
            if self.size is None or "must exactly match" not in str(err):
                raise
        # decord 0.6 derives the channel count of scaled frames from FFmpeg's padded row length:
        # for some widths (e.g. 16, 48) it reports 4 channels and its batch copy fails. The bytes
        # are right; single frames come back as padded rows, which are cut to the real width.
        width, height = self.size
        frames = []
        for index in indices:
            raw = self._reader[int(index)].asnumpy()
            frames.append(raw.reshape(height, -1)[:, : 3 * width].reshape(height, width, 3))
        return torch.from_numpy(np.stack(frames))

    def close(self) -> None:
        self._reader = None


# --------------------------------------------------------------------------- torchcodec


class _TorchcodecVideo(OpenVideo):
    def __init__(self, path: str, size: tuple[int, int] | None, threads: int, device: str) -> None:
        from torchcodec.decoders import VideoDecoder

        kwargs: dict[str, Any] = {}
        if size is not None:
            from torchcodec.transforms import Resize

            kwargs["transforms"] = [Resize((size[1], size[0]))]  # (height, width)
        self._decoder = VideoDecoder(
            path, dimension_order="NHWC", num_ffmpeg_threads=threads, device=device, seek_mode="exact", **kwargs
        )
        self.num_frames = int(self._decoder.metadata.num_frames or 0)

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        return self._decoder.get_frames_at([int(i) for i in indices]).data

    def close(self) -> None:
        self._decoder = None


# --------------------------------------------------------------------------- PyAV


class _PyAVVideo(OpenVideo):
    """Frame-exact random access with PyAV.

    Opening reads the packet index (no decoding), like decord and torchcodec's exact mode: frame
    ``i`` is the packet with the ``i``-th smallest timestamp. Reading seeks to the keyframe before
    the first wanted frame and decodes forward; it seeks again only when the next wanted frame
    lies behind a later keyframe.

    Streams whose packets lack timestamps are read in order from the start instead, frame ``i``
    being the ``i``-th decoded frame: slower, but needs no timestamps.
    """

    def __init__(self, path: str, size: tuple[int, int] | None, threads: int, device: str) -> None:
        import av

        self._container = av.open(path)
        if not self._container.streams.video:
            self._container.close()
            raise VideoReadError("cannot open as video: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.codec_context.thread_count = threads
        self.size = size
        stamps, keys, missing = [], [], False
        for packet in self._container.demux(self._stream):
            if packet.size == 0:  # the flush packet
                continue
            missing |= packet.pts is None
            stamps.append(packet.pts if packet.pts is not None else packet.dts)
            if packet.is_keyframe:
                keys.append(stamps[-1])
        self.sequential = missing
        self.num_frames = len(stamps)
        if not self.sequential:
            self._pts = np.sort(np.asarray(stamps, dtype=np.int64))
            self._keyframes = np.sort(np.asarray(keys or stamps[:1], dtype=np.int64))
        self._frames: Any = None  # the running decode generator
        self._last_pts: int | None = None
        self._position = -1  # sequential mode: index of the last decoded frame

    def _keyframe_before(self, pts: int) -> int:
        at = int(np.searchsorted(self._keyframes, pts, side="right")) - 1
        return int(self._keyframes[max(at, 0)])

    def _seek(self, pts: int) -> None:
        self._container.seek(int(pts), stream=self._stream, backward=True, any_frame=False)
        self._frames = self._container.decode(self._stream)
        self._last_pts = None

    def get_frames(self, indices: Sequence[int]) -> torch.Tensor:
        if self.sequential:
            return torch.from_numpy(np.stack([self._decode_index(int(i)) for i in indices]))
        out = []
        for index in indices:
            target = int(self._pts[int(index)])
            key = self._keyframe_before(target)
            if self._frames is None or self._last_pts is None or self._last_pts >= target or key > self._last_pts:
                self._seek(key)
            out.append(self._decode_until(target))
        return torch.from_numpy(np.stack(out))

    def _decode_until(self, target: int) -> np.ndarray:
        for frame in self._frames:
            if frame.pts is None:
                raise VideoReadError("decoding failed: frames without timestamps")
            self._last_pts = frame.pts
            if frame.pts == target:
                return self._to_rgb(frame)
            if frame.pts > target:
                break
        raise VideoReadError(f"decoding failed: frame at timestamp {target} not decodable")

    def _decode_index(self, index: int) -> np.ndarray:
        """Sequential mode: decode on (from the start when going back) to frame ``index``."""
        if self._frames is None or self._position >= index:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
            self._frames, self._position = self._container.decode(self._stream), -1
        for frame in self._frames:
            self._position += 1
            if self._position == index:
                return self._to_rgb(frame)
        raise VideoReadError(f"decoding failed: the stream ended after {self._position + 1} frames")

    def _to_rgb(self, frame: Any) -> np.ndarray:
        if self.size is None:
            return frame.to_ndarray(format="rgb24")
        width, height = self.size
        return frame.reformat(width=width, height=height, format="rgb24", interpolation="BILINEAR").to_ndarray()

    def close(self) -> None:
        if self._container is not None:
            self._frames = None
            self._container.close()
            self._container = None


_OPENERS: dict[str, Callable[[str, tuple[int, int] | None, int, str], OpenVideo]] = {
    "decord": _DecordVideo,
    "torchcodec": _TorchcodecVideo,
    "pyav": _PyAVVideo,
}


# --------------------------------------------------------------------------- choosing a backend

_availability: dict[str, str | None] = {}  # backend -> None (works) or why not
_announced: set[str] = set()


def _tiny_video() -> bytes:
    """A two-frame mp4 in memory, to check that a backend really decodes here."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        for level in (0, 128):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), level, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def _check_backend(name: str) -> str | None:
    """None when ``name`` decodes here, else the reason it does not."""
    try:
        if name == "decord":
            import decord  # noqa: F401
        elif name == "pyav":
            import av  # noqa: F401
        else:
            # Importing torchcodec can succeed without FFmpeg (later versions load it lazily):
            # decoding a tiny in-memory clip is the only reliable check.
            from torchcodec.decoders import VideoDecoder

            if len(VideoDecoder(_tiny_video(), seek_mode="exact").get_frames_at([1]).data) != 1:
                return "test decode returned no frame"
    except Exception as err:  # ImportError, OSError from missing shared libraries, RuntimeError
        return f"{type(err).__name__}: {short_reason(err)}"
    return None


def backend_problem(name: str) -> str | None:
    """Why backend ``name`` cannot run here (None: it can); checked once per process."""
    if name not in _availability:
        _availability[name] = _check_backend(name)
    return _availability[name]


def available_backends() -> list[str]:
    """The backends that decode here, in ``AUTO_ORDER``."""
    return [name for name in AUTO_ORDER if backend_problem(name) is None]


def resolve_decoder(name: str = "auto", device: str = "cpu") -> str:
    """The backend to use for ``data.decoder=name`` (and ``data.decode_device=device``).

    ``auto`` takes the first of decord, torchcodec, pyav that works here (torchcodec alone when
    decoding on CUDA) and logs once which one it took.

    Raises:
        ValueError: an unknown backend or device name (the message lists the known ones), or
            ``device=cuda`` with a backend other than torchcodec.
        DecoderUnavailable: the backend is not installed or cannot decode here (the message says
            which extra or package installs it).
    """
    name, device = str(name).lower(), str(device).lower()
    if device not in DEVICES:
        raise ConfigError(f"unknown data.decode_device {device!r}; known: {', '.join(DEVICES)}")
    if name == "auto":
        candidates = ["torchcodec"] if device == "cuda" else list(AUTO_ORDER)
        for candidate in candidates:
            if backend_problem(candidate) is None:
                _announce(candidate, device, skipped=candidates[: candidates.index(candidate)])
                return candidate
        name = candidates[-1]  # none works: report the last resort's problem below
    if name not in BACKENDS:
        raise ConfigError(f"unknown data.decoder {name!r}; known: auto, {', '.join(BACKENDS)}")
    if device == "cuda" and name != "torchcodec":
        raise ConfigError(f"data.decode_device=cuda needs data.decoder=torchcodec (or auto), got {name!r}")
    problem = backend_problem(name)
    if problem is not None:
        raise DecoderUnavailable(f"video decoder {name!r} cannot run here ({problem}); install: {INSTALL_HINTS[name]}")
    if device == "cuda" and not torch.cuda.is_available():
        raise DecoderUnavailable("data.decode_device=cuda, but torch sees no CUDA device")
    return name


def _announce(name: str, device: str, skipped: Sequence[str]) -> None:
    if name in _announced:
        return
    _announced.add(name)
    why = "; ".join(f"{s}: {backend_problem(s)}" for s in skipped)
    log.info("video decoder: %s on %s (data.decoder=auto%s)", name, device, f"; not usable here: {why}" if why else "")
