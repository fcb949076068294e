"""Loader throughput on a video list for each decoder backend, next to a plain sequential loop.

    python -m adamae_rl.data.bench LIST --decoder decord torchcodec pyav --workers 0 1 2

For each decoder and worker count it times ``ClipStream`` over the list (train-mode sampling,
after warm-up batches that also start the workers) and compares it with a sequential loop over
the same sample keys in this process: the same decode and transforms, no DataLoader. The
sequential loop also measures the share of its time spent inside the decoder (open, frame reads,
close). Every decoder reads the same clips. Readers take turns for ``--rounds`` rounds; each
figure is the median. ``--decoder all`` takes every backend that runs here.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import torch

from adamae_rl.cli import ArgumentParser, run_command
from adamae_rl.data.decoders import BACKENDS, available_backends, resolve_decoder
from adamae_rl.geometry import ClipGeometry
from adamae_rl.data.loader import ClipStream, DataError, ResumableSampler, SampleKey
from adamae_rl.data.video import SamplingOptions, VideoClips, read_video_list


def stream_keys(length: int, seed: int, count: int) -> list[SampleKey]:
    """The first ``count`` sample keys a shuffled stream with ``seed`` draws (wrapping epochs)."""
    sampler, keys = ResumableSampler(length, seed=seed, shuffle=True), []
    while len(keys) < count:
        keys.extend(sampler)
        sampler.epoch += 1
    return keys[:count]


def time_sequential(dataset: VideoClips, keys: Sequence[SampleKey]) -> tuple[float, float]:
    """Read ``keys`` one after another; returns ``(clips per second, decode share of time)``."""
    decode_before = dataset.decode_seconds
    start = time.perf_counter()
    for key in keys:
        dataset[key]
    elapsed = time.perf_counter() - start
    clips = len(keys) * dataset.clips_per_item
    return clips / elapsed, (dataset.decode_seconds - decode_before) / elapsed


def time_stream(
    dataset: VideoClips, batch_size: int, workers: int, warmup: int, batches: int, seed: int
) -> float:
    """Clips per second of a ``ClipStream``, not counting its ``warmup`` first batches."""
    stream = ClipStream(dataset, batch_size, seed=seed, num_workers=workers, persistent_workers=workers > 0)
    for _ in range(warmup):  # starts the workers, lets each decode once and fill its queue
        next(stream)
    start = time.perf_counter()
    for _ in range(batches):
        next(stream)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> None:
    parser = ArgumentParser(
        prog="python -m adamae_rl.data.bench", description=__doc__.split("\n\n")[0],
        epilog="example: python -m adamae_rl.data.bench shapes/train.txt --decoder all --workers 0 1 2",
    )
    parser.add_argument("list_file")
    parser.add_argument("--decoder", nargs="+", default=["auto"],
                        help=f"decoder backends to compare: auto, all, {', '.join(BACKENDS)} (default: auto)")
    parser.add_argument("--decode-device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--root", default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=16, help="timed batches per run")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per reader (median)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--tubelet", type=int, default=2)
    parser.add_argument("--sampling-rate", type=int, default=4)
    parser.add_argument("--temporal-mode", default="dense", choices=["dense", "segments"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--decode-short-side", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--torch-threads", type=int, default=1, help="in this process (workers use 1)")
    args = parser.parse_args(argv)
    # Loader workers run torch single-threaded; the in-process readers do the same, so the
    # comparison is about processes, not intra-op threads (which also thrash on a busy machine).
    torch.set_num_threads(args.torch_threads)

    geometry = run_command(lambda: ClipGeometry(args.frames, args.size, args.patch, args.tubelet), setup=False)
    entries = run_command(lambda: read_video_list(args.list_file, args.root), setup=False)
    try:
        names = available_backends() if args.decoder == ["all"] else [resolve_decoder(n, args.decode_device) for n in args.decoder]
    except (ValueError, DataError) as err:  # unknown or missing decoder: one line, not a traceback
        parser.error(str(err))
    if args.decode_device == "cuda":
        args.workers = [0]  # CUDA decoding runs in the main process (see ClipStream)
    datasets = {}
    for name in dict.fromkeys(names):  # once each, in the order given
        options = SamplingOptions(
            sampling_rate=args.sampling_rate,
            temporal_mode=args.temporal_mode,
            repeat=args.repeat,
            decode_short_side=args.decode_short_side,
            decoder=name,
            decode_device=args.decode_device,
        )
        datasets[name] = VideoClips(entries, geometry, options, train=True)

    # Warm-up batches are drawn but not timed, the same ones for every reader, so that all of
    # them time the same clips; each worker process needs its own first decode.
    warmup = max(1, *args.workers)
    items = args.batch_size // args.repeat
    keys = stream_keys(len(entries), args.seed, (warmup + args.batches) * items)
    for dataset in datasets.values():
        time_sequential(dataset, keys[: warmup * items])
    # Rounds interleave the readers, and the median damps one-off stalls of a shared machine.
    sequential = {name: [] for name in datasets}
    shares = {name: [] for name in datasets}
    streams = {(name, w): [] for name in datasets for w in args.workers}
    for _ in range(args.rounds):
        for name, dataset in datasets.items():
            rate, share = time_sequential(dataset, keys[warmup * items :])
            sequential[name].append(rate)
            shares[name].append(share)
            for workers in args.workers:
                streams[name, workers].append(
                    time_stream(dataset, args.batch_size, workers, warmup, args.batches, args.seed)
                )

    clips = args.batches * args.batch_size
    print(
        f"{args.list_file}: {len(entries)} videos, {clips} timed clips of [3, {args.frames}, {args.size}, "
        f"{args.size}] per reader, median of {args.rounds} rounds"
    )
    # Other processes on the machine change every figure; say how busy it was.
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"| {'decoder':<11}| {'reader':<18}| {'clips/s':>8} | {'vs sequential':>13} | {'decode share':>12} |")
    print(f"|{'-' * 12}|{'-' * 19}|{'-' * 10}|{'-' * 15}|{'-' * 14}|")
    for name in datasets:
        base = statistics.median(sequential[name])
        share = statistics.median(shares[name])
        print(f"| {name:<11}| {'sequential loop':<18}| {base:>8.1f} | {1.0:>12.2f}x | {share:>12.0%} |")
        for workers in args.workers:
            rate = statistics.median(streams[name, workers])
            print(f"| {name:<11}| {f'stream workers={workers}':<18}| {rate:>8.1f} | {rate / base:>12.2f}x | {'':>12} |")


if __name__ == "__main__":
    main()
