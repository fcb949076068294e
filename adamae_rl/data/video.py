"""Real videos: list files, temporal sampling, multi-scale crops, bad files.

``data=video`` reads a VideoMAE-style list file and yields the same items as the synthetic
clips: ``video`` float ``[3, T, H, W]`` (ImageNet-normalized), ``label`` int64 scalar (-1 when the
list has no labels) and, when a foreground mask lies beside the video (``clip.fg.npz`` next to
``clip.mp4``, written by :mod:`adamae_rl.data.make_synthetic`), ``fg_tokens`` bool ``[N]``.

List files (one video a line, fields separated by whitespace, blank lines ignored):

- ``path label`` -- VideoMAE fine-tuning / Kinetics / SSv2 lists;
- ``path 0 -1`` -- VideoMAE v2 pre-training lists (start frame 0, whole file, no label).

A relative ``path`` is joined to ``root`` when one is given, else to the list file's folder.
Paths may not contain spaces (as in VideoMAE).

Frames come from the decoder named by ``data.decoder`` (decord, torchcodec or PyAV; ``auto`` takes
the first that works here, see :mod:`adamae_rl.data.decoders`); every backend gives the same
frames for the same indices, so the choice changes speed, not the clips.

Every random choice of an item (temporal window, crop, flip, the replacement of a bad file) is
drawn from a generator seeded by the sample key's ``draw_seed``, so the stream is the same with
any number of loader workers.

Bad files (missing, empty, unreadable, truncated, not a video, too short for one clip) are
skipped: the item is read from another video drawn from the same generator, and the item reports
``(path, reason)`` under ``SKIPPED_KEY`` so that :class:`~adamae_rl.data.loader.ClipStream` can
log and count it in the main process. ``strict=True`` raises :class:`BadVideoError` instead.
"""

from __future__ import annotations

import math
import os
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from adamae_rl.data.decoders import (
    VideoReadError,
    open_video,
    read_frames,
    resolve_decoder,
    short_reason,
)
from adamae_rl.data.sources import register_data_source
from adamae_rl.errors import ConfigError, InputFileError
from adamae_rl.utils.files import read_bounded
from adamae_rl.geometry import ClipGeometry
from adamae_rl.data.loader import SKIPPED_KEY, DataError, SampleKey, log, split_key
from adamae_rl.data.synthetic import pixel_mask_to_tokens
from adamae_rl.data.transforms import normalize

TEMPORAL_MODES = ("dense", "segments")
FG_SUFFIX = ".fg.npz"
# A draw that keeps hitting bad files gives up after this many reads: the stream's skip-share
# check normally stops a run long before, this only guards against an endless loop.
MAX_READ_ATTEMPTS = 20
# A foreground mask is unpacked to one byte per pixel: at most this many (256 MiB) per video.
MAX_FG_MASK_PIXELS = 256 * 2**20
# The frames one item decodes (uint8) may take at most this much: the float crop and its resize
# briefly take about four times as much more (measured: 8 frames of 4000x4000, 384 MB decoded,
# peaked at 1.7 GB above the process's base). Above it the video is skipped with a reason that
# names data.decode_short_side, so a loader worker holds at most about 1.3 GB per item.
MAX_DECODED_BYTES = 256 * 2**20


class BadVideoError(DataError):
    """A bad video in strict mode, or no readable video found for an item."""


# --------------------------------------------------------------------------- list files


@dataclass(frozen=True)
class VideoEntry:
    """One line of a list file: a resolved video path and its label (-1 = unlabelled)."""

    path: str
    label: int


def read_video_list(list_file: str | os.PathLike, root: str | os.PathLike | None = None) -> list[VideoEntry]:
    """Parse a VideoMAE list file (``path label`` or ``path 0 -1`` lines).

    Raises:
        FileNotFoundError: the list file does not exist.
        ValueError: a malformed line (names ``list_file:line``), or a list without videos.
    """
    list_file = Path(list_file)
    base = Path(root) if root else list_file.parent
    entries = []
    for number, line in enumerate(_read_list_text(list_file).splitlines(), start=1):
        if not line.strip():
            continue
        path, label = _parse_line(line, f"{list_file}:{number}")
        entries.append(VideoEntry(path=str(base / path), label=label))  # an absolute path wins
    if not entries:
        raise InputFileError(f"video list {list_file} holds no videos")
    return entries


def _read_list_text(list_file: Path) -> str:
    """The text of a list file, or an error that names the file and what is wrong with it.

    Only a regular file of bounded size is read (``/dev/zero`` or a FIFO would never end).
    """
    data = read_bounded(list_file, "video list")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputFileError(
            f"video list {list_file} is not UTF-8 text (byte {err.start}); is it a video? "
            f"pass a list file with 'path label' lines"
        ) from None
    if "\x00" in text:
        raise InputFileError(f"video list {list_file} is a binary file, not a list of 'path label' lines")
    return text


def _parse_line(line: str, where: str) -> tuple[str, int]:
    fields = line.split()
    try:
        numbers = [int(f) for f in fields[1:]]
    except ValueError:
        raise InputFileError(f"{where}: expected 'path label' or 'path 0 -1', got {line!r}") from None
    if len(fields) == 2:
        return fields[0], numbers[0]
    if len(fields) == 3:
        # VideoMAE v2 pre-training form: start frame and frame count; only whole files exist here.
        if numbers != [0, -1]:
            raise InputFileError(f"{where}: only whole-video entries 'path 0 -1' are supported, got {line!r}")
        return fields[0], -1
    raise InputFileError(f"{where}: expected 'path label' or 'path 0 -1', got {line!r}")


# --------------------------------------------------------------------------- temporal sampling


def dense_indices(
    video_frames: int, num_frames: int, sampling_rate: int, rng: np.random.Generator | None
) -> np.ndarray:
    """``num_frames`` frames ``sampling_rate`` apart in one window (Kinetics style).

    Train (``rng`` given): a random window; validation (``rng=None``): the centre window. A video
    shorter than the window is read at the largest stride that fits (down to 1), so frames never
    repeat; fewer than ``num_frames`` frames raise ``VideoReadError``.

    Returns:
        int64 ``[num_frames]``, increasing.
    """
    require_frames(video_frames, num_frames)
    stride = min(sampling_rate, video_frames // num_frames)
    span = (num_frames - 1) * stride + 1
    slack = video_frames - span
    start = slack // 2 if rng is None else int(rng.integers(slack + 1))
    return start + stride * np.arange(num_frames, dtype=np.int64)


def segment_indices(video_frames: int, num_frames: int, rng: np.random.Generator | None) -> np.ndarray:
    """One frame from each of ``num_frames`` equal segments (TSN / SSv2 style).

    Train: a random frame of each segment; validation: each segment's middle frame.

    Returns:
        int64 ``[num_frames]``, strictly increasing.
    """
    require_frames(video_frames, num_frames)
    edges = np.arange(num_frames + 1, dtype=np.int64) * video_frames // num_frames
    lo, hi = edges[:-1], edges[1:]  # hi > lo because video_frames >= num_frames
    if rng is None:
        return (lo + hi - 1) // 2
    return rng.integers(lo, hi)


def require_frames(video_frames: int, num_frames: int) -> None:
    if video_frames < num_frames:
        raise VideoReadError(f"too short: {video_frames} frames, a clip needs {num_frames}")


# --------------------------------------------------------------------------- spatial transforms


class CropBox(NamedTuple):
    """A crop in pixels of the frame it was drawn for."""

    top: int
    left: int
    height: int
    width: int


def multiscale_crop_box(
    height: int, width: int, scales: Sequence[float], max_distort: int, rng: np.random.Generator
) -> CropBox:
    """Random crop whose sides are ``scale * short side`` (VideoMAE's GroupMultiScaleCrop).

    Height and width take scales at most ``max_distort`` steps apart in ``scales``, which jitters
    the aspect ratio; the position is uniform over the frame.
    """
    short = min(height, width)
    sides = [max(1, int(short * s)) for s in scales]
    pairs = [(h, w) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    top = int(rng.integers(height - crop_h + 1))
    left = int(rng.integers(width - crop_w + 1))
    return CropBox(top, left, crop_h, crop_w)


def centre_crop_box(height: int, width: int) -> CropBox:
    """The centred square of side ``min(height, width)`` (= resize short side, centre crop)."""
    short = min(height, width)
    return CropBox((height - short) // 2, (width - short) // 2, short, short)


def rescale_box(box: CropBox, src: tuple[int, int], dst: tuple[int, int]) -> CropBox:
    """The same region of a frame of size ``dst`` (``(H, W)``) as ``box`` is of size ``src``."""
    fy, fx = dst[0] / src[0], dst[1] / src[1]
    top, left = round(box.top * fy), round(box.left * fx)
    return CropBox(top, left, max(1, round(box.height * fy)), max(1, round(box.width * fx)))


def transform_frames(frames: torch.Tensor, box: CropBox, size: int, flip: bool) -> torch.Tensor:
    """Crop, resize, flip and normalize decoded frames.

    Args:
        frames: uint8 ``[T, H, W, 3]`` as decoded.
    Returns:
        float ``[3, T, size, size]``, ImageNet-normalized.
    """
    crop = frames[:, box.top : box.top + box.height, box.left : box.left + box.width]
    clip = crop.permute(0, 3, 1, 2).float()  # [T, 3, h, w]: interpolate treats T as the batch
    if clip.shape[-2:] != (size, size):
        clip = F.interpolate(clip, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    if flip:
        clip = clip.flip(-1)
    return normalize((clip / 255.0).permute(1, 0, 2, 3))


def transform_mask(mask: torch.Tensor, box: CropBox, size: int, flip: bool) -> torch.Tensor:
    """Apply a frame crop to a per-pixel foreground mask.

    A resized pixel is foreground when any part of its source area is, so small shapes are not
    lost when the crop is shrunk (tokens are "any pixel" flags too).

    Args:
        mask: bool ``[T, H, W]``.
    Returns:
        bool ``[T, size, size]``.
    """
    crop = mask[:, box.top : box.top + box.height, box.left : box.left + box.width]
    if crop.shape[-2:] != (size, size):
        crop = F.adaptive_avg_pool2d(crop.float(), (size, size)) > 0
    return crop.flip(-1) if flip else crop


# --------------------------------------------------------------------------- files


def fg_mask_path(video_path: str | os.PathLike) -> Path:
    """Where a video's foreground mask lives: ``clip.mp4`` -> ``clip.fg.npz``."""
    return Path(video_path).with_suffix(FG_SUFFIX)


def save_fg_mask(path: str | os.PathLike, fg: torch.Tensor) -> None:
    """Store a bool mask ``[T, H, W]`` bit-packed (8x smaller than bytes)."""
    fg_np = fg.cpu().numpy().astype(bool)
    np.savez_compressed(path, packed=np.packbits(fg_np.reshape(-1)), shape=np.array(fg_np.shape))


def fg_mask_shape(path: str | os.PathLike) -> tuple[int, int, int]:
    """The ``[T, H, W]`` a mask file claims, checked against its own array headers.

    Reads only the headers and the 3-element ``shape`` member, never the mask: a small file
    can claim a huge shape, or a compressed member can inflate to gigabytes.

    Raises:
        InputFileError: not a mask written by :func:`save_fg_mask`, a shape that is not three
            positive sides, more than ``MAX_FG_MASK_PIXELS``, or a ``packed`` member whose size
            disagrees with the shape.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            shape_header = _npy_header(archive, "shape.npy")
            packed_header = _npy_header(archive, "packed.npy")
            if shape_header[0] != (3,) or shape_header[1].kind not in "iu":
                raise InputFileError(f"{path}: 'shape' must hold three integers, has shape {shape_header[0]} of {shape_header[1]}")
            with archive.open("shape.npy") as member:
                shape = tuple(int(v) for v in np.lib.format.read_array(member, allow_pickle=False))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        if isinstance(err, InputFileError):
            raise
        raise InputFileError(f"{path} is not a foreground mask file: {short_reason(err)}") from None
    # shapes as TxHxW: short_reason() cuts messages at "] " (decord's source-location prefix)
    sides = "x".join(map(str, shape))
    if len(shape) != 3 or min(shape) < 1:
        raise InputFileError(f"{path}: mask shape {sides} is not TxHxW with positive sides")
    pixels = shape[0] * shape[1] * shape[2]
    if pixels > MAX_FG_MASK_PIXELS:
        raise InputFileError(f"{path}: mask shape {sides} has {pixels} pixels, more than {MAX_FG_MASK_PIXELS}")
    if packed_header[0] != (-(-pixels // 8),) or packed_header[1] != np.uint8:
        raise InputFileError(f"{path}: {packed_header[0][0] if packed_header[0] else 0} packed bytes do not match mask shape {sides}")
    return shape  # type: ignore[return-value]


def _npy_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype]:
    with archive.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"npy format version {version}")
    if dtype.hasobject:
        raise ValueError(f"{name} holds Python objects")
    return tuple(shape), dtype


def check_fg_mask_fits(path: str | os.PathLike, shape: Sequence[int], num_frames: int, frame_size: Sequence[int]) -> None:
    """A mask fits a video when it has one frame per video frame and the frames' aspect ratio.

    Raises:
        VideoReadError: it does not (the item is then skipped like a bad video).
    """
    name = Path(path).name
    if shape[0] != num_frames:
        raise VideoReadError(f"foreground mask {name} has shape {tuple(shape)}, video has {num_frames} frames")
    height, width = frame_size
    # the mask may be stored at another resolution (data.prepare scales videos, not masks), never
    # at another aspect ratio: allow the rounding of even-sided scaling
    if abs(shape[1] * width - shape[2] * height) > max(shape[1], shape[2], height, width) * 2:
        raise VideoReadError(f"foreground mask {name} is {shape[1]}x{shape[2]}, video frames are {height}x{width}")


def load_fg_mask(path: str | os.PathLike) -> torch.Tensor:
    """Inverse of :func:`save_fg_mask`: bool ``[T, H, W]``; the header is checked first
    (:func:`fg_mask_shape`), so memory stays within ``MAX_FG_MASK_PIXELS`` bytes."""
    shape = fg_mask_shape(path)
    with np.load(path, allow_pickle=False) as data:
        bits = np.unpackbits(data["packed"], count=int(np.prod(shape)))
    return torch.from_numpy(bits.reshape(shape).astype(bool))


# --------------------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class SamplingOptions:
    """How clips are drawn from a video (see ``configs/data/video.yaml``)."""

    sampling_rate: int = 4
    temporal_mode: str = "dense"
    scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_distort: int = 1
    flip: bool = False
    repeat: int = 1
    decode_short_side: int | None = None  # see resolve_decode_short_side for data.decode_short_side=auto
    decode_threads: int = 1
    decoder: str = "auto"
    decode_device: str = "cpu"

    def __post_init__(self) -> None:
        if self.temporal_mode not in TEMPORAL_MODES:
            raise ConfigError(f"temporal_mode must be one of {TEMPORAL_MODES}, got {self.temporal_mode!r}")
        if self.sampling_rate < 1 or self.repeat < 1:
            raise ConfigError(f"sampling_rate={self.sampling_rate} and repeat={self.repeat} must be >= 1")
        if not self.scales or not all(0 < s <= 1 for s in self.scales):
            raise ConfigError(f"scales must be a non-empty list of values in (0, 1], got {self.scales}")


# data.decode_short_side: "auto" decodes at the smallest size the random crops need (see
# resolve_decode_short_side); SamplingOptions holds the resolved size (None: native).
DEFAULT_DECODE_SHORT_SIDE = "auto"
# What data=video does with bad videos unless told otherwise: skip them (counted, logged) until
# more than half of the clips drawn so far were skipped.
DEFAULT_STRICT = False
DEFAULT_MAX_SKIP_SHARE = 0.5


class VideoClips(Dataset):
    """Clips from a list of videos, decoded with the backend ``options.decoder`` names.

    Args:
        entries: videos and labels (see :func:`read_video_list`).
        geometry: the model's clip shape; frames and pixels of every clip match it.
        options: temporal and spatial sampling.
        train: random windows, crops and flips; else centre window and centre crop.
        strict: raise :class:`BadVideoError` at the first bad file instead of skipping it.
        max_skip_share: read by ``ClipStream``: the share of failed reads that stops a run.

    Raises:
        ValueError / DecoderUnavailable: an unknown decoder, or one that cannot run here.

    Items (``R = options.repeat`` clips from one decode; without a leading ``R`` dim when 1):
        ``video`` float ``[R, 3, T, H, W]``, ``label`` int64 ``[R]``, ``fg_tokens`` bool ``[R, N]``
        when a mask exists, and ``SKIPPED_KEY``: list of ``(path, reason)``.
    """

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        geometry: ClipGeometry,
        options: SamplingOptions = SamplingOptions(),
        train: bool = True,
        strict: bool = DEFAULT_STRICT,
        max_skip_share: float = DEFAULT_MAX_SKIP_SHARE,
    ) -> None:
        if not entries:
            raise InputFileError("no videos given")
        self.entries = list(entries)
        self.geometry = geometry
        self.options = options
        self.train = train
        self.strict = strict
        self.max_skip_share = max_skip_share
        self.clips_per_item = options.repeat
        self.decoder = resolve_decoder(options.decoder, options.decode_device)
        # Read by ClipStream: CUDA cannot be used in forked loader workers, so GPU decoding runs
        # in the training process.
        self.decode_in_main_process = options.decode_device == "cuda"
        self.decode_seconds = 0.0  # time inside the decoder, this process only (used by the benchmark)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        index, draw_seed = split_key(key)
        rng = np.random.default_rng(draw_seed)
        skipped: list[tuple[str, str]] = []
        for _ in range(MAX_READ_ATTEMPTS):
            entry = self.entries[index]
            try:
                item = self._read(entry, rng)
            except VideoReadError as err:
                if self.strict:
                    raise BadVideoError(f"bad video {entry.path}: {err}") from None
                skipped.append((entry.path, str(err)))
                index = int(rng.integers(len(self.entries)))  # the replacement, from draw_seed
                continue
            item[SKIPPED_KEY] = skipped
            return item
        bad = sorted({path for path, _ in skipped})
        raise BadVideoError(f"no readable video in {MAX_READ_ATTEMPTS} draws; bad files: {bad[:5]}")

    def _read(self, entry: VideoEntry, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """Decode once, draw ``repeat`` clips."""
        opts = self.options
        start = time.perf_counter()
        try:
            num_video_frames, windows, wanted, frames = self._decode(entry.path, rng)
        finally:
            self.decode_seconds += time.perf_counter() - start
        mask = self._load_mask(entry.path, num_video_frames, frames.shape[1:3])
        clips = [self._clip(frames, mask, np.searchsorted(wanted, w), w, rng) for w in windows]
        label = torch.tensor(entry.label, dtype=torch.long)
        if opts.repeat == 1:
            return {**clips[0], "label": label}
        stacked = {k: torch.stack([c[k] for c in clips]) for k in clips[0]}
        return {**stacked, "label": label.expand(opts.repeat).clone()}

    def _decode(
        self, path: str, rng: np.random.Generator
    ) -> tuple[int, list[np.ndarray], np.ndarray, torch.Tensor]:
        """Open the video and decode every frame the ``repeat`` windows need, once.

        Returns:
            the video's frame count; the windows (frame indices of each clip); ``wanted``, their
            sorted union; frames uint8 ``[len(wanted), H, W, 3]``.
        """
        opts = self.options
        with open_video(path, self.decoder, opts.decode_short_side, opts.decode_threads, opts.decode_device) as video:
            num_video_frames = video.num_frames
            windows = [self._frame_indices(num_video_frames, rng) for _ in range(opts.repeat)]
            wanted = np.unique(np.concatenate(windows))
            _check_decode_bytes(len(wanted), video.frame_size)
            frames = read_frames(video, wanted.tolist())
        return num_video_frames, windows, wanted, frames

    def _frame_indices(self, num_video_frames: int, rng: np.random.Generator) -> np.ndarray:
        draw = rng if self.train else None
        if self.options.temporal_mode == "segments":
            return segment_indices(num_video_frames, self.geometry.num_frames, draw)
        return dense_indices(num_video_frames, self.geometry.num_frames, self.options.sampling_rate, draw)

    def _clip(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor | None,
        rows: np.ndarray,
        indices: np.ndarray,
        rng: np.random.Generator,
    ) -> dict[str, torch.Tensor]:
        """One clip from the decoded frames ``[F, H, W, 3]``; ``rows`` picks its frames there."""
        opts, size = self.options, self.geometry.img_size
        height, width = frames.shape[1:3]
        if self.train:
            box = multiscale_crop_box(height, width, opts.scales, opts.max_distort, rng)
            flip = opts.flip and bool(rng.random() < 0.5)
        else:
            box, flip = centre_crop_box(height, width), False
        clip = {"video": transform_frames(frames[torch.from_numpy(rows).to(frames.device)], box, size, flip)}
        if mask is not None:
            mask_box = rescale_box(box, (height, width), tuple(mask.shape[1:]))
            fg = transform_mask(mask[torch.from_numpy(indices)], mask_box, size, flip)
            clip["fg_tokens"] = pixel_mask_to_tokens(fg, self.geometry.patch_size, self.geometry.tubelet_size)
        return clip

    @staticmethod
    def _load_mask(video_path: str, num_video_frames: int, frame_size: Sequence[int]) -> torch.Tensor | None:
        """The video's foreground mask, its header checked against the video before it is read."""
        path = fg_mask_path(video_path)
        if not path.exists():
            return None
        try:
            shape = fg_mask_shape(path)
            check_fg_mask_fits(path, shape, num_video_frames, frame_size)
            return load_fg_mask(path)
        except VideoReadError:
            raise
        except InputFileError as err:  # the message names the file already
            raise VideoReadError(f"bad foreground mask {err}") from None
        except Exception as err:  # a broken mask makes the item unusable like a broken video
            raise VideoReadError(f"unreadable foreground mask {path.name}: {short_reason(err)}") from None


def _check_decode_bytes(count: int, frame_size: tuple[int, int]) -> None:
    """Refuse (as a bad video, with the reason) an item whose decoded frames exceed the bound."""
    width, height = frame_size
    need = count * width * height * 3
    if need > MAX_DECODED_BYTES:
        raise VideoReadError(
            f"{count} frames of {width}x{height} would take {need / 2**30:.1f} GiB to decode; "
            "set data.decode_short_side (auto scales to what the model needs)"
        )


def resolve_decode_short_side(value: int | str | None, img_size: int, scales: Sequence[float]) -> int | None:
    """``data.decode_short_side``: ``auto`` -> the smallest short side that loses no pixel the model sees.

    The smallest crop is ``min(scales) * short side`` and is resized to ``img_size``, so decoding
    at ``img_size / min(scales)`` (rounded up to even) never upsamples a crop that native
    decoding would have downsampled, and a 4000x4000 video costs what a 340x340 one does.
    ``None`` decodes at the native size; an integer is used as given.
    """
    if value != "auto":
        return None if value is None else int(value)
    side = math.ceil(img_size / min(scales))
    return side + side % 2


# --------------------------------------------------------------------------- config entry point


def sampling_options(cfg: Mapping[str, Any], train: bool, img_size: int | None = None) -> SamplingOptions:
    """``SamplingOptions`` from a ``data`` config; validation never repeats clips.

    ``img_size``: the model's, needed for ``decode_short_side: auto`` (without it, ``auto``
    decodes at the native size).
    """
    base = SamplingOptions()  # a key the config leaves out takes its default here, the only one

    def get(key: str) -> Any:
        return cfg.get(key, getattr(base, key))

    scales = tuple(float(s) for s in get("scales"))
    short_side = cfg.get("decode_short_side", DEFAULT_DECODE_SHORT_SIDE)
    if short_side == "auto":
        short_side = None if img_size is None else resolve_decode_short_side("auto", img_size, scales)
    return SamplingOptions(
        sampling_rate=int(get("sampling_rate")),
        temporal_mode=str(get("temporal_mode")),
        scales=scales,
        max_distort=int(get("max_distort")),
        flip=bool(get("flip")),
        repeat=int(get("repeat")) if train else 1,
        decode_short_side=None if short_side is None else int(short_side),
        decode_threads=int(get("decode_threads")),
        decoder=str(get("decoder")),
        decode_device=str(get("decode_device")),
    )


def build_video_dataset(cfg: Mapping[str, Any], split: str, geometry: ClipGeometry, seed: int) -> VideoClips:
    """The ``data=video`` dataset for ``split`` ("train" or "val").

    Without ``val_list`` validation reads the training list with validation sampling (centre
    windows and crops), with a warning: it measures fit, not generalisation. ``seed`` is unused:
    all randomness comes from the sample keys, which the stream derives from its own seed.
    """
    del seed
    train = split == "train"
    list_file = cfg.get("train_list") if train else cfg.get("val_list")
    if not list_file and not train and cfg.get("train_list"):
        log.warning("data.val_list is not set: validating on data.train_list (centre clips)")
        list_file = cfg["train_list"]
    if not list_file:
        raise ConfigError("data.train_list is not set: pass data.train_list=/path/to/train.txt (lines 'path label')")
    return VideoClips(
        read_video_list(list_file, root=cfg.get("root")),
        geometry,
        sampling_options(cfg, train, geometry.img_size),
        train=train,
        strict=bool(cfg.get("strict", DEFAULT_STRICT)),
        max_skip_share=float(cfg.get("max_skip_share", DEFAULT_MAX_SKIP_SHARE)),
    )


@register_data_source("video")
def video_source(split: str, geometry: ClipGeometry, seed: int, **options: Any) -> VideoClips:
    """``data=video``: the list files and sampling options of the ``data`` config (schema:
    ``adamae_rl.schema.VideoData``)."""
    return build_video_dataset(options, split=split, geometry=geometry, seed=seed)
