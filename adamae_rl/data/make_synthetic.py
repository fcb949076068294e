"""Write the synthetic moving-shapes clips as real mp4 files, with lists and foreground masks.

    python -m adamae_rl.data.make_synthetic OUT_DIR --num-videos 512 --val-videos 64

writes ``OUT_DIR/train/clip_000000.mp4`` (+ ``clip_000000.fg.npz``, the per-frame foreground
mask ``[T, H, W]``), the same under ``val/``, and ``train.txt`` / ``val.txt`` with ``path label``
lines (paths relative to OUT_DIR, labels = motion direction class). Then train on them with
``data=video data.train_list=OUT_DIR/train.txt data.val_list=OUT_DIR/val.txt``.

Videos are longer than a model clip (64 frames by default): a 16-frame clip at the default
sampling rate 4 spans 61 frames.
Train and validation videos use the same seeds as ``data=synthetic``.

Files already in OUT_DIR that this command did not write (a ``train.txt`` of your own, other
videos under ``train/``) are never overwritten: the command stops with an error unless
``--force``. A rerun into the same OUT_DIR rewrites its own files.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from adamae_rl.cli import ArgumentParser, run_command

import av
import numpy as np
import torch
from tqdm import tqdm

from adamae_rl.data.factory import VAL_SEED_OFFSET
from adamae_rl.data.synthetic import BACKGROUNDS, DEFAULT_BACKGROUND, render_clip
from adamae_rl.data.video import save_fg_mask
from adamae_rl.utils.files import OutputDir, atomic_write_text

# H.264 in yuv420p at high quality: decord decodes it frame-exactly; crf 12 keeps the pixels
# close to the rendered ones, and no B-frames keeps decode order = display order.
COMMAND = "data.make_synthetic"
# One video is rendered whole before it is encoded: at most this much float memory.
MAX_RENDER_BYTES = 2**30
CODEC_OPTIONS = {"crf": "12", "preset": "veryfast", "bf": "0"}


def write_video(path: str | Path, pixels: torch.Tensor, fps: int = 25) -> None:
    """Encode ``pixels`` float ``[3, T, H, W]`` in [0, 1] (H, W even) as an H.264 mp4.

    Written to a temporary file and renamed: a kill never leaves a torn video under ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")  # the suffix names the container
    try:
        _encode(tmp, pixels, fps)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _encode(path: Path, pixels: torch.Tensor, fps: int) -> None:
    frames = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()  # [T, H, W, 3]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = CODEC_OPTIONS
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())  # flush the encoder


def write_split(
    out: OutputDir | Path, split: str, count: int, seed: int, frames: int, size: int, max_shapes: int,
    background: str = DEFAULT_BACKGROUND,
) -> Path:
    """Render ``count`` clips into ``out/split/`` and write ``out/split.txt``.

    Raises:
        OutputError: ``split.txt`` or ``split/`` exists in ``out`` and was not written by this
            command (unless ``out`` was opened with ``force``).
    """
    if not isinstance(out, OutputDir):
        out = OutputDir(out, COMMAND)
    (list_file,) = out.claim(f"{split}.txt")
    folder = out.claim_folder(split)
    folder.mkdir(exist_ok=True)
    lines = []
    for index in tqdm(range(count), desc=f"{split} videos", unit="video", disable=count < 32):
        pixels, fg, label = render_clip(seed, index, frames, size, max_shapes, background)
        name = f"clip_{index:06d}"
        write_video(folder / f"{name}.mp4", pixels)
        save_fg_mask(folder / f"{name}.fg.npz", fg)
        lines.append(f"{split}/{name}.mp4 {label}\n")
    return atomic_write_text(list_file, "".join(lines))


def write_all(args: argparse.Namespace, shape: dict) -> list[Path]:
    """Both splits into ``args.out_dir``; every name is claimed before anything is written."""
    out = OutputDir(args.out_dir, COMMAND, force=args.force)
    splits = [("train", args.num_videos, args.seed)]
    if args.val_videos:
        splits.append(("val", args.val_videos, args.seed + VAL_SEED_OFFSET))
    for split, _, _ in splits:  # refuse before writing anything
        out.claim(f"{split}.txt")
        out.claim_folder(split)
    return [write_split(out, split, count, seed, **shape) for split, count, seed in splits]


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m adamae_rl.data.make_synthetic", description=__doc__.split("\n\n")[0],
        epilog="example: python -m adamae_rl.data.make_synthetic shapes --num-videos 512 --val-videos 64",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--num-videos", type=int, required=True, help="training videos")
    parser.add_argument("--val-videos", type=int, default=0, help="validation videos (default: none)")
    parser.add_argument("--frames", type=int, default=64, help="frames per video")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels (even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-shapes", type=int, default=3)
    parser.add_argument("--background", choices=BACKGROUNDS, default=DEFAULT_BACKGROUND, help="the clips' background kind")
    parser.add_argument("--force", action="store_true", help="overwrite files in OUT_DIR that this command did not write")
    args = parser.parse_args(argv)
    if args.size % 2 or args.size < 2:
        parser.error(f"--size must be even (yuv420p), got {args.size}")
    if args.num_videos < 1 or args.frames < 1 or args.val_videos < 0 or args.max_shapes < 1:
        parser.error("--num-videos, --frames and --max-shapes must be >= 1, --val-videos >= 0")
    if 12 * args.frames * args.size**2 > MAX_RENDER_BYTES:  # a clip is rendered whole, float [3, T, H, W]
        parser.error(f"--frames {args.frames} x --size {args.size}^2 renders more than "
                     f"{MAX_RENDER_BYTES // 2**30} GiB per video; use fewer frames or a smaller size")
    shape = dict(frames=args.frames, size=args.size, max_shapes=args.max_shapes, background=args.background)
    written = run_command(lambda: write_all(args, shape))
    for list_file in written:
        print(f"wrote {list_file}")


if __name__ == "__main__":
    main()
