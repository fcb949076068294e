"""Re-encode a list's videos once, smaller and at a lower frame rate, for fast training reads.

    python -m adamae_rl.data.prepare LIST OUT --short-side 160 --fps 15 --workers 4

Decoding full-size, high-frame-rate videos is the usual reason a video MAE idles during
pre-training (``train/data_wait_share`` in the metrics). This writes every video of ``LIST``
once as H.264 with its short side scaled down to ``--short-side`` (never up), at most ``--fps``
frames per second (frames are dropped, never invented), without B-frames and with a keyframe
every ``--keyint`` frames (cheap random access), to ``OUT/videos/<path in the list>.mp4``, and
writes the new list ``OUT/<LIST's file name>`` with the same labels. A foreground mask beside a
video (``clip.fg.npz``) is carried over, with the same frames kept.

Resumable: videos already in ``OUT`` are skipped (each is written to a temporary file and renamed
when complete), so an interrupted run continues where it stopped; ``OUT/prepare.json`` records the
options, and a rerun with other options is refused. Bad files (missing, empty, not a video,
unreadable, truncated) are skipped, named, counted and listed in ``OUT/skipped.txt``; the new list
leaves them out.

Safe output: OUT may not hold the list or any of its videos (a command never writes into its
own input; a rerun on OUT's own list would re-encode into ``videos/videos/``), and files in OUT
that ``prepare`` did not write are never overwritten (``--force`` overwrites them). Two videos
that would get the same output name (``a.mp4`` and ``a.avi``) keep their old suffix in it
(``a.avi.mp4``), so no video is lost and no label moves. A file system that refuses the output
(full disk, quota) stops the command with that reason; it never counts as a bad video.
"""

from __future__ import annotations

import errno
import json
import math
import multiprocessing
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from adamae_rl.cli import ArgumentParser, run_command
from adamae_rl.data.decoders import VideoReadError, check_file, scaled_size, short_reason
from adamae_rl.data.video import (
    VideoEntry,
    fg_mask_path,
    fg_mask_shape,
    load_fg_mask,
    read_video_list,
    save_fg_mask,
)
from adamae_rl.errors import ConfigError, InputFileError, OutputError
from adamae_rl.utils.files import OutputDir, atomic_write_text, record_name

MANIFEST = "prepare.json"
SKIPPED_FILE = "skipped.txt"
VIDEO_DIR = "videos"
COMMAND = "data.prepare"
# x264's presets: a typo would otherwise fail every video as "bad".
X264_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@dataclass(frozen=True)
class EncodeOptions:
    """How every video is re-encoded (recorded in ``OUT/prepare.json``)."""

    short_side: int | None = 320
    fps: float | None = None
    crf: int = 18
    keyint: int = 16
    preset: str = "veryfast"

    def __post_init__(self) -> None:
        if self.preset not in X264_PRESETS:
            raise ConfigError(f"unknown x264 preset {self.preset!r}; known: {', '.join(X264_PRESETS)}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be in 0..51 (x264), got {self.crf}")


@dataclass(frozen=True)
class Job:
    source: str
    target: str  # the finished .mp4 under OUT


# --------------------------------------------------------------------------- one video


def output_name(entry: VideoEntry, base: Path, keep_suffix: bool = False) -> str:
    """Where a video goes under ``OUT/videos``: its path in the list, with an .mp4 suffix.

    Paths outside the list's base folder keep their absolute path under ``abs/``.
    ``keep_suffix``: append .mp4 to the old suffix (``a.avi`` -> ``a.avi.mp4``).
    """
    rel = os.path.relpath(entry.path, base)
    if rel.startswith(".."):
        rel = os.path.join("abs", os.path.abspath(entry.path).lstrip("/\\").replace(":", ""))
    rel_path = Path(rel)
    if keep_suffix and rel_path.suffix.lower() != ".mp4":
        return str(Path(VIDEO_DIR) / rel_path.with_name(rel_path.name + ".mp4"))
    return str(Path(VIDEO_DIR) / rel_path.with_suffix(".mp4"))


def output_names(entries: Sequence[VideoEntry], base: Path) -> list[str]:
    """One output name per entry; different videos never share one.

    Videos that would share a name (``a.mp4``, ``a.avi``) keep their old suffix in it
    (``a.mp4``, ``a.avi.mp4``). The same video listed twice keeps one name.

    Raises:
        InputFileError: two videos still share a name (e.g. ``a.avi`` and a listed ``a.avi.mp4``).
    """
    plain = [output_name(e, base) for e in entries]
    sources: dict[str, set[str]] = {}
    for entry, name in zip(entries, plain):
        sources.setdefault(name, set()).add(os.path.abspath(entry.path))
    names = [output_name(e, base, keep_suffix=True) if len(sources[n]) > 1 else n for e, n in zip(entries, plain)]
    owner: dict[str, str] = {}
    for entry, name in zip(entries, names):
        other = owner.setdefault(name, os.path.abspath(entry.path))
        if other != os.path.abspath(entry.path):
            raise InputFileError(f"{other} and {entry.path} would both be written to OUT/{name}; rename one of them")
    return names


def kept_frames(num_frames: int, ratio: float) -> list[int]:
    """Source frame indices shown at the new frame rate: output frame j is source frame floor(j * ratio).

    Args:
        num_frames: frames in the source.
        ratio: source rate / output rate, at least 1 (frames are only dropped).
    """
    count = math.ceil(num_frames / ratio - 1e-9)
    return [min(num_frames - 1, math.floor(j * ratio + 1e-9)) for j in range(count)]


def reencode(job: Job, options: EncodeOptions) -> None:
    """Re-encode one video (and its mask) into ``job.target``; ``VideoReadError`` when it is bad."""
    check_file(job.source)
    target = Path(job.target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp.mp4")
    try:
        kept, num_source = _encode(job.source, tmp, options)
        mask_src = fg_mask_path(job.source)
        if mask_src.exists():
            _copy_mask(mask_src, fg_mask_path(target), kept, num_source)
        os.replace(tmp, target)  # last: a finished .mp4 means a finished video and mask
    finally:
        tmp.unlink(missing_ok=True)


def _encode(source: str, tmp: Path, options: EncodeOptions) -> tuple[list[int], int]:
    """Decode ``source`` and write the kept frames, scaled; returns (kept indices, source frames)."""
    import av

    try:
        inp = av.open(source)
    except Exception as err:
        _raise_if_output_failed(err, tmp)
        raise VideoReadError(f"cannot open as video: {short_reason(err)}") from None
    with inp:
        if not inp.streams.video:
            raise VideoReadError("cannot open as video: no video stream")
        stream = inp.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoReadError(f"cannot open as video: frame size {width}x{height}")
        size = scaled_size(width, height, options.short_side) or (width - width % 2, height - height % 2)
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25)
        out_rate = rate if options.fps is None or options.fps >= rate else Fraction(options.fps).limit_denominator(1001)
        ratio = float(rate / out_rate)
        try:
            return _transcode(inp, stream, tmp, size, out_rate, ratio, options)
        except VideoReadError:
            raise
        except Exception as err:  # PyAV raises its own error types for broken streams
            _raise_if_output_failed(err, tmp)
            raise VideoReadError(f"decoding failed: {short_reason(err)}") from None


def _raise_if_output_failed(err: BaseException, target: Path) -> None:
    """A full disk (or quota, file size limit, read-only file system) is not a bad video: stop."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in SPACE_ERRNOS:
            raise OutputError(f"cannot write into {target.parent}: {os.strerror(seen.errno)}") from None
        seen = seen.__cause__ or seen.__context__


def _transcode(inp, stream, tmp: Path, size: tuple[int, int], out_rate: Fraction, ratio: float, options: EncodeOptions):
    import av

    kept: list[int] = []
    next_out = 0  # output frame j shows source frame floor(j * ratio)
    index = -1
    with av.open(str(tmp), "w", format="mp4") as out:
        encoder = out.add_stream("libx264", rate=out_rate)
        encoder.width, encoder.height = size
        encoder.pix_fmt = "yuv420p"
        encoder.options = {"crf": str(options.crf), "preset": options.preset, "bf": "0", "g": str(options.keyint)}
        for index, frame in enumerate(inp.decode(stream)):
            while math.floor(next_out * ratio + 1e-9) == index:
                scaled = frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="AREA")
                scaled.pts, scaled.time_base = next_out, 1 / out_rate  # frame j at j / rate seconds
                out.mux(encoder.encode(scaled))
                kept.append(index)
                next_out += 1
        if not kept:
            raise VideoReadError("no video frames")
        out.mux(encoder.encode())
    return kept, index + 1


def _copy_mask(source: Path, target: Path, kept: list[int], num_source: int) -> None:
    try:
        frames = fg_mask_shape(source)[0]  # the header, checked before the mask is read
    except InputFileError as err:  # the message names the file already
        raise VideoReadError(f"bad foreground mask {err}") from None
    except Exception as err:
        raise VideoReadError(f"unreadable foreground mask {source.name}: {short_reason(err)}") from None
    if frames != num_source:
        raise VideoReadError(f"foreground mask {source.name} has {frames} frames, video has {num_source}")
    mask = load_fg_mask(source)
    tmp = target.with_name(f".{target.name}.tmp.npz")
    try:
        save_fg_mask(tmp, mask[kept])
    except OSError as err:
        _raise_if_output_failed(err, target)
        raise
    os.replace(tmp, target)


def run_job(job: Job, options: EncodeOptions) -> tuple[Job, str | None]:
    """``(job, None)`` when done, ``(job, reason)`` when the source is bad; runs in a worker."""
    try:
        reencode(job, options)
    except VideoReadError as err:
        return job, str(err)
    return job, None


# --------------------------------------------------------------------------- the list


@dataclass
class Report:
    done: int = 0  # videos re-encoded now (each distinct video once, however often it is listed)
    already: int = 0  # videos finished by an earlier run
    skipped: dict[str, str] | None = None  # bad source -> reason
    list_file: Path | None = None


def prepare(
    list_file: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: EncodeOptions = EncodeOptions(),
    root: str | os.PathLike | None = None,
    workers: int = 1,
    progress: bool = True,
    force: bool = False,
) -> Report:
    """Re-encode every video of ``list_file`` into ``out_dir`` and write the new list there.

    Raises:
        OutputError: ``out_dir`` holds the list or one of its videos, holds files ``prepare`` did
            not write (and ``force`` is off), was prepared with other options, or the file
            system refused a write.
        InputFileError: no video could be read, or two videos would share an output name.
    """
    list_file, out_dir = Path(list_file), Path(out_dir)
    entries = read_video_list(list_file, root)
    base = Path(root) if root else list_file.parent
    if list_file.name in (MANIFEST, SKIPPED_FILE, record_name(COMMAND), VIDEO_DIR):
        raise InputFileError(f"the list's name {list_file.name} is one of prepare's own files in OUT; rename the list")
    folders = {os.path.dirname(os.path.abspath(e.path)) for e in entries}  # a video is inside OUT iff its folder is
    out = OutputDir(out_dir, COMMAND, force=force, inputs=[list_file, *folders])
    out.claim(MANIFEST, SKIPPED_FILE, list_file.name)
    out.claim_folder(VIDEO_DIR)
    _check_manifest(out_dir, options, list_file)
    targets = [out_dir / name for name in output_names(entries, base)]
    jobs = {Job(os.path.abspath(e.path), str(t)) for e, t in zip(entries, targets)}
    todo = sorted((j for j in jobs if not Path(j.target).exists()), key=lambda j: j.source)
    report = Report(already=len(jobs) - len(todo), skipped={})
    for job, reason in _run_all(todo, options, workers, progress):
        if reason is None:
            report.done += 1
        else:
            report.skipped[job.source] = reason
            tqdm.write(f"skipped bad video {job.source}: {reason}", file=sys.stderr)
    _write_skipped(out_dir, report.skipped)
    lines = [
        f"{Path(t).relative_to(out_dir).as_posix()} {_label_field(e)}\n"
        for e, t in zip(entries, targets)
        if os.path.abspath(e.path) not in report.skipped
    ]
    if not lines:
        raise InputFileError(f"no video of {list_file} could be read; see {out_dir / SKIPPED_FILE}")
    report.list_file = atomic_write_text(out_dir / list_file.name, "".join(lines))
    return report


def _label_field(entry: VideoEntry) -> str:
    return "0 -1" if entry.label == -1 else str(entry.label)  # -1: VideoMAE v2's unlabelled form


def _check_manifest(out_dir: Path, options: EncodeOptions, list_file: Path) -> None:
    """Record the options; refuse to mix videos encoded with other options in one folder."""
    path = out_dir / MANIFEST
    wanted = asdict(options)
    if path.exists():
        old = json.loads(path.read_text()).get("options", {})
        changed = {k: (old.get(k), v) for k, v in wanted.items() if old.get(k) != v}
        if changed:
            diff = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
            raise OutputError(f"{out_dir} holds videos prepared with other options ({diff}); choose another OUT")
        return
    atomic_write_text(path, json.dumps({"options": wanted, "source_list": str(list_file)}, indent=2) + "\n")


def _write_skipped(out_dir: Path, skipped: dict[str, str]) -> None:
    path = out_dir / SKIPPED_FILE
    if skipped:
        atomic_write_text(path, "".join(f"{src}\t{reason}\n" for src, reason in sorted(skipped.items())))
    else:
        path.unlink(missing_ok=True)


def _run_all(jobs: Sequence[Job], options: EncodeOptions, workers: int, progress: bool):
    """Yield ``(job, reason)`` as jobs finish, in worker processes when ``workers > 1``."""
    bar = tqdm(total=len(jobs), desc="prepare", unit="video", disable=not progress or not jobs)
    bad = 0
    try:
        if workers <= 1:
            results = (run_job(job, options) for job in jobs)
        else:
            results = _in_pool(jobs, options, workers)
        for job, reason in results:
            bad += reason is not None
            bar.set_postfix(bad=bad, refresh=False)
            bar.update(1)
            yield job, reason
    finally:
        bar.close()


def _in_pool(jobs: Sequence[Job], options: EncodeOptions, workers: int):
    # forkserver on Linux: workers need nothing but this module, and a fork of this process can
    # hang in its first torch op when the parent's OpenMP pool was running (measured with
    # OMP_NUM_THREADS=2: the pool's workers waited forever in a futex).
    context = multiprocessing.get_context("forkserver") if sys.platform.startswith("linux") else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures: list[Future] = [pool.submit(run_job, job, options) for job in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m adamae_rl.data.prepare",
        description=__doc__.split("\n\n")[0],
        epilog="example: python -m adamae_rl.data.prepare k400/train.txt k400_320 --short-side 320 --workers 4\n"
        "Then train with data=video data.train_list=OUT/<LIST's name>.",
    )
    parser.add_argument("list_file", metavar="LIST", help="VideoMAE list: 'path label' or 'path 0 -1' lines")
    parser.add_argument("out_dir", metavar="OUT", type=Path, help="output folder (created; rerun to resume)")
    parser.add_argument("--root", default=None, help="prefix of relative paths in LIST (default: LIST's folder)")
    parser.add_argument("--short-side", type=int, default=EncodeOptions.short_side,
                        help="scale the short side down to this many pixels (0: keep the size)")
    parser.add_argument("--fps", type=float, default=None, help="at most this frame rate (default: keep)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="parallel processes")
    parser.add_argument("--crf", type=int, default=EncodeOptions.crf, help="H.264 quality (lower = better)")
    parser.add_argument("--keyint", type=int, default=EncodeOptions.keyint, help="frames between keyframes")
    parser.add_argument("--preset", default=EncodeOptions.preset, help="x264 preset")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--force", action="store_true", help="overwrite files in OUT that prepare did not write")
    args = parser.parse_args(argv)
    if args.short_side < 0 or args.keyint < 1 or args.workers < 1 or (args.fps is not None and args.fps <= 0):
        parser.error(
            f"need --short-side >= 0, --keyint >= 1, --workers >= 1, --fps > 0; got {args.short_side}, "
            f"{args.keyint}, {args.workers}, {args.fps}"
        )
    report = run_command(
        lambda: prepare(
            args.list_file, args.out_dir, EncodeOptions(args.short_side or None, args.fps, args.crf, args.keyint, args.preset),
            args.root, args.workers, not args.no_progress, args.force,
        )
    )
    skipped = len(report.skipped or {})
    print(
        f"prepared {report.done} videos, {report.already} already done, {skipped} bad files skipped"
        + (f" (listed in {args.out_dir / SKIPPED_FILE})" if skipped else "")
    )
    print(f"wrote {report.list_file}")


if __name__ == "__main__":
    main()
