"""``python -m adamae_rl.bench``: time the real training step and report how much of the machine it uses.

Examples::

    python -m adamae_rl.bench                                    # the demo configuration (tiny)
    python -m adamae_rl.bench vit_s_224 --precision fp32 bf16    # ViT-S, 16x224², both precisions
    python -m adamae_rl.bench vit_s_224 --compile off on --json bench.jsonl
    python -m adamae_rl.bench vit_b_224                          # ViT-B, batch 16, bf16, on CUDA
    python -m adamae_rl.bench tiny policy=random mask_ratio=0.75 # any training override

Each configuration runs the training app's own step (``env.reset -> policy -> env.step ->
objective -> backward -> optimizer steps``) on parts built from the training config, and reports:
the median step time after warm-up, clips/s, FLOPs per step (``torch.utils.flop_counter`` plus the
CPU flash-attention kernels, see :mod:`adamae_rl.utils.flops`), achieved FLOP/s, the matmul peak
this process measures for the same dtype and device, MFU (achieved / peak), peak memory (process
peak RSS on CPU, peak allocated on CUDA) and a per-phase breakdown. Several configurations run one
after another, each in its own process (so peak memory is that configuration's own).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.errors import HydraException

from adamae_rl.cli import error_line, is_user_error
from adamae_rl.errors import UserError

# Named configurations: training-config overrides plus timing defaults. Clip geometry and model
# widths come from the `model` config group, as in training.
CONFIGS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        about="the demo: tiny MAE, 16x64², batch 16, ratio 0.9, adaptive sampler, precision auto",
        overrides=[], warmup=3, steps=20, precision="auto",
    ),
    "vit_s_224": dict(
        about="ViT-S MAE (384x12, decoder 192x4), 16x224², batch 2, ratio 0.95, adaptive, normalized targets",
        overrides=["model=vit_s", "mask_ratio=0.95", "trainer.batch_size=2"], warmup=2, steps=8,
    ),
    "vit_s_224_dual": dict(
        about="vit_s_224 with VideoMAE V2 dual masking: tube 90% in the encoder, running-cell 50% decoder mask",
        overrides=["model=vit_s", "mask_ratio=0.9", "trainer.batch_size=2", "policy=tube", "decoder_mask=running_cell"],
        warmup=1, steps=3,
    ),
    "vit_s_224_tube": dict(
        about="vit_s_224_dual without decoder masking (the decoder rebuilds every masked token)",
        overrides=["model=vit_s", "mask_ratio=0.9", "trainer.batch_size=2", "policy=tube"],
        warmup=1, steps=3,
    ),
    "vit_b_224": dict(
        about="ViT-B MAE (768x12, decoder 384x4), 16x224², batch 16, ratio 0.95, adaptive, bf16, CUDA",
        # Clips are rendered on the CPU: 8 loader processes keep a GPU step from waiting on them.
        overrides=["model=vit_b", "mask_ratio=0.95", "trainer.batch_size=16", "data.num_workers=8"],
        warmup=5, steps=20, precision="bf16", device="cuda",
    ),
}
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class BenchError(UserError, ValueError):
    """Bad bench input: printed as one line."""


@dataclass
class Case:
    """One configuration to time."""

    name: str
    precision: str
    compile: bool
    device: str
    overrides: list[str]
    steps: int
    warmup: int
    threads: int | None


# --------------------------------------------------------------------------------------------------
# Parts of a run: the one place that knows how the training app assembles them
# --------------------------------------------------------------------------------------------------
def training_config(overrides: list[str]) -> dict:
    """The shipped training config with overrides, as plain dicts."""
    from hydra import compose, initialize_config_dir

    from adamae_rl import train
    from adamae_rl.config import plain

    overrides = train.rewrite_plugin_overrides(overrides, [train.CONFIG_DIR])  # GROUP=NAME of plug-ins
    with initialize_config_dir(config_dir=str(train.CONFIG_DIR), version_base="1.3"):
        return plain(compose("config", overrides=overrides))


def build_parts(cfg: dict, device: torch.device) -> Any:
    """The training app's parts for ``cfg`` (``builders.build_run``), not compiled yet: the FLOPs
    are counted on an eager step first (see :func:`run_case`)."""
    from adamae_rl import builders
    from adamae_rl.utils.distributed import Process

    return builders.build_run({**cfg, "trainer": {**cfg["trainer"], "compile": False}}, device, Process())


def compile_parts(parts: Any) -> bool:
    """Compile as ``trainer.compile=true`` does; True when it compiled, False when it fell back."""
    from adamae_rl import builders

    return bool(builders.compile_run(parts))


def train_step(parts: Any, cfg: dict) -> None:
    """One real training step (the training app's ``train_step``)."""
    from adamae_rl import train
    from adamae_rl.builders import autocast_dtype

    _, _, finite = train.train_step(parts, cfg, autocast_dtype(cfg["trainer"]["precision"]))
    if not finite:
        raise BenchError("the training step produced a non-finite loss")


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], count: int, device: torch.device, cpu_times: list[float] | None = None) -> list[float]:
    """Wall seconds of ``count`` calls of ``step``, each ended by a device sync.

    ``cpu_times``, when given, receives each call's process CPU seconds (all threads): next to
    the wall time it shows how much of a step this process actually ran on a shared machine.
    """
    times = []
    for _ in range(count):
        _sync(device)
        start, cpu = time.perf_counter(), time.process_time()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - cpu)
    return times


@contextmanager
def phase_timers(parts: Any, device: torch.device, sink: dict[str, float]):
    """Time the phases of a step by wrapping the parts' methods for the duration of the block.

    ``sink`` receives seconds per phase: ``reset`` (clips + patch embedding for the sampler),
    ``sampler`` (policy forward), ``mae_forward`` (env.step: encoder, decoder, errors),
    ``objective`` (policy loss), ``optimizer`` (all optimizer steps). The rest of a step is
    ``backward`` (computed by the caller as step time minus these).
    """
    targets = [
        ("reset", parts.env, "reset"), ("sampler", parts.policy, "forward"),
        ("mae_forward", parts.env, "step"), ("objective", parts.policy_loss, "forward"),
        ("optimizer", parts.opt_mae, "step"),
    ]
    if getattr(parts, "opt_policy", None) is not None:
        targets.append(("optimizer", parts.opt_policy, "step"))
    saved = []
    for phase, obj, attr in targets:
        had_own = attr in vars(obj)
        original = getattr(obj, attr)
        saved.append((obj, attr, had_own, original))
        setattr(obj, attr, _timed(original, phase, device, sink))
    try:
        yield sink
    finally:
        for obj, attr, had_own, original in reversed(saved):
            if had_own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)


def _timed(fn: Callable, phase: str, device: torch.device, sink: dict[str, float]) -> Callable:
    def wrapper(*args, **kwargs):
        _sync(device)
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        _sync(device)
        sink[phase] = sink.get(phase, 0.0) + time.perf_counter() - start
        return out

    return wrapper


def measure_phases(parts: Any, step: Callable[[], None], count: int, device: torch.device) -> dict[str, float]:
    """Median milliseconds per phase over ``count`` instrumented steps (see :func:`phase_timers`)."""
    rows = []
    for _ in range(count):
        sink: dict[str, float] = {}
        with phase_timers(parts, device, sink):
            (total,) = time_steps(step, 1, device)
        sink["backward"] = total - sum(sink.values())
        rows.append(sink)
    names = ["reset", "sampler", "mae_forward", "objective", "backward", "optimizer"]
    return {name: 1e3 * statistics.median(r.get(name, 0.0) for r in rows) for name in names}


def peak_memory_mib(device: torch.device) -> tuple[float, str]:
    """(MiB, what): peak allocated CUDA memory, or this process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kib / 1024, "peak_rss"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> what the training app would run on ``device`` (``builders.resolve_precision``)."""
    from adamae_rl import builders

    return builders.resolve_precision(precision, device)


def check_precision(precision: str, device: torch.device) -> None:
    """One clear error for a precision the device cannot run."""
    if precision not in PRECISION_DTYPES:
        raise BenchError(f"unknown precision {precision!r}; known: {', '.join(PRECISION_DTYPES)}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BenchError(f"precision bf16 is not supported by {torch.cuda.get_device_name(device)}; use --precision fp32")


def run_case(case: Case) -> dict:
    """Build, warm up and time one configuration; returns its JSON record."""
    from adamae_rl.utils.flops import count_flops, matmul_peak

    if case.threads:
        torch.set_num_threads(case.threads)
    device = _resolve_device(case.device)
    precision = resolve_precision(case.precision, device)
    check_precision(precision, device)
    cfg = training_config(
        [*case.overrides, f"trainer.precision={precision}", f"trainer.device={device}",
         "trainer.progress=false", "trainer.tensorboard=false"]
    )
    parts = build_parts(cfg, device)

    def step() -> None:
        train_step(parts, cfg)

    # FLOPs are counted on one eager step (a compiled graph hides its ops from the counter); the
    # count is the same with or without compiling. The step also warms the caches up.
    flops, by_op = count_flops(step)
    compiled = compile_parts(parts) if case.compile else False
    time_steps(step, case.warmup, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dtype = PRECISION_DTYPES[precision]
    # The peak is measured before and after the timed steps: on a shared machine the load changes.
    peak = matmul_peak(dtype, device)
    cpu_times: list[float] = []
    times = time_steps(step, case.steps, device, cpu_times)
    peak = max(peak, matmul_peak(dtype, device))
    phases = measure_phases(parts, step, min(case.steps, 3), device)
    memory, memory_kind = peak_memory_mib(device)

    median = statistics.median(times)
    batch = int(cfg["trainer"]["batch_size"])
    achieved = flops / median
    return {
        "config": case.name,
        "precision": precision,
        "compile": case.compile,
        "compiled": compiled,
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        "model": cfg["model"]["preset"],
        "img_size": cfg["model"]["img_size"],
        "num_frames": cfg["model"]["num_frames"],
        "num_tokens": parts.model.cfg.num_tokens,
        "policy": cfg["policy"].get("name") or cfg["policy"].get("_target_"),
        "batch_size": batch,
        "mask_ratio": float(cfg["mask_ratio"]),
        "decoder_mask": (cfg.get("decoder_mask") or {}).get("name", "none"),
        "decoder_tokens_per_clip": decoder_tokens(parts),
        "overrides": case.overrides,
        "warmup": case.warmup,
        "steps": case.steps,
        "step_s": median,
        "step_s_all": times,
        "step_cpu_s": statistics.median(cpu_times),
        "clips_per_s": batch / median,
        "flops_per_step": flops,
        "attention_flops_per_step": attention_flops(by_op),
        "flops_by_op": by_op,
        "achieved_flops": achieved,
        "peak_flops": peak,
        "mfu": achieved / peak,
        "peak_memory_mib": memory,
        "peak_memory_kind": memory_kind,
        "phases_ms": phases,
        "torch": torch.__version__,
        "commit": _commit(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def decoder_tokens(parts: Any) -> int:
    """Tokens the decoder runs on per clip: the visible ones plus the mask tokens it reconstructs."""
    num_masked = int(parts.policy_module.num_masked)
    decoder_mask = parts.env.decoder_mask
    if decoder_mask is None:
        return parts.model.cfg.num_tokens
    from adamae_rl.envs.decoder_masks import decoded_count

    return parts.model.cfg.num_tokens - num_masked + decoded_count(num_masked, decoder_mask.ratio)


def attention_flops(by_op: dict[str, int]) -> int:
    """FLOPs of attention among a step's ops: the SDPA kernels, and batched matmuls.

    In this model only attention multiplies batched matrices (``bmm``, and ``baddbmm`` where it
    adds a bias: the CPU bf16 path, :func:`adamae_rl.models.attention.chunked_attention`); linear
    layers run as ``mm``/``addmm``.
    """
    return sum(n for op, n in by_op.items() if "attention" in op or op.split(".")[-1] in ("bmm", "baddbmm"))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _commit() -> str | None:
    """The git commit of the checkout this package runs from, when it is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _resolve_device(request: str) -> torch.device:
    from adamae_rl.utils.distributed import resolve_device

    try:
        return resolve_device(request)
    except ValueError as err:
        raise BenchError(str(err).replace("trainer.device", "--device")) from None


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    known = "\n".join(f"  {name:<10} {spec['about']}" for name, spec in CONFIGS.items())
    parser = argparse.ArgumentParser(
        prog="python -m adamae_rl.bench",
        description="Time the real training step per configuration: step time, clips/s, FLOPs, MFU, memory, phases.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"configurations:\n{known}\n\n"
            "examples:\n"
            "  python -m adamae_rl.bench vit_s_224 --precision fp32 bf16 --json bench.jsonl\n"
            "  python -m adamae_rl.bench tiny policy=random mask_ratio=0.75\n"
            "  python -m adamae_rl.bench vit_b_224 --device cuda"
        ),
    )
    parser.add_argument(
        "items", nargs="*", metavar="CONFIG|KEY=VALUE",
        help="configuration names (default: tiny) and training overrides such as policy=random",
    )
    parser.add_argument(
        "--precision", nargs="+", choices=[*sorted(PRECISION_DTYPES), "auto"],
        help="auto: bf16 where the device has bf16 matmuls in hardware, else fp32 (as trainer.precision=auto); "
        "default: the configuration's own, else fp32",
    )
    parser.add_argument("--compile", nargs="+", choices=["off", "on"], default=["off"], help="torch.compile the step's modules (default: off)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the configuration's own, else auto)")
    parser.add_argument("--steps", type=int, help="timed steps (default: per configuration)")
    parser.add_argument("--warmup", type=int, help="untimed steps after building (default: per configuration)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="append one JSON line per configuration to FILE")
    parser.add_argument("--record", type=Path, help=argparse.SUPPRESS)  # a child process's result file
    return parser.parse_intermixed_args(argv)


def expand(args: argparse.Namespace) -> list[Case]:
    """The configurations to time: every name x precision x compile choice."""
    names = [item for item in args.items if "=" not in item] or ["tiny"]
    overrides = [item for item in args.items if "=" in item]
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        raise BenchError(f"unknown bench configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    for value, what in ((args.steps, "--steps"), (args.warmup, "--warmup"), (args.threads, "--threads")):
        if value is not None and value < (0 if what == "--warmup" else 1):
            raise BenchError(f"{what} must be at least {0 if what == '--warmup' else 1}, got {value}")
    cases = []
    for name in names:
        spec = CONFIGS[name]
        for precision in args.precision or [spec.get("precision", "fp32")]:
            for comp in args.compile:
                cases.append(Case(
                    name=name, precision=precision, compile=comp == "on",
                    device=args.device or spec.get("device", "auto"),
                    overrides=[*spec["overrides"], *overrides],
                    steps=args.steps or spec["steps"],
                    warmup=spec["warmup"] if args.warmup is None else args.warmup,
                    threads=args.threads,
                ))
    return cases


def case_argv(case: Case) -> list[str]:
    """The command-line arguments that select exactly ``case`` (one configuration)."""
    argv = [
        case.name, *case.overrides[len(CONFIGS[case.name]["overrides"]):],
        "--precision", case.precision, "--compile", "on" if case.compile else "off", "--device", case.device,
        "--steps", str(case.steps), "--warmup", str(case.warmup),
    ]
    return argv + ["--threads", str(case.threads)] if case.threads else argv


def run_isolated(case: Case) -> dict:
    """Run one configuration in a fresh process, so its peak memory and caches are its own."""
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "record.json"
        cmd = [sys.executable, "-m", "adamae_rl.bench", *case_argv(case), "--record", str(record)]
        done = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0 or not record.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise BenchError(lines[-1].removeprefix("error: ") if lines else f"bench process failed ({done.returncode})")
        if done.stderr.strip():
            print(done.stderr.rstrip(), file=sys.stderr)  # warnings, e.g. a compile fallback
        return json.loads(record.read_text())


def format_table(records: list[dict]) -> str:
    """A readable table: one row per configuration, times in ms, FLOPs in G."""
    head = ["config", "prec", "compile", "device", "dec tokens", "step ms", "clips/s", "GFLOP/step", "(attn)", "GFLOP/s",
            "peak GFLOP/s", "MFU", "mem MiB", "reset", "sampler", "mae fwd", "objective", "backward", "optim"]
    rows = [head]
    for r in records:
        ph = r["phases_ms"]
        comp = ("on" if r["compiled"] else "fallback") if r["compile"] else "off"
        rows.append([
            r["config"], r["precision"], comp, r["device"], str(r.get("decoder_tokens_per_clip", "")), f"{1e3 * r['step_s']:.0f}", f"{r['clips_per_s']:.2f}",
            f"{r['flops_per_step'] / 1e9:.1f}", f"{r['attention_flops_per_step'] / 1e9:.1f}",
            f"{r['achieved_flops'] / 1e9:.0f}", f"{r['peak_flops'] / 1e9:.0f}", f"{100 * r['mfu']:.1f}%",
            f"{r['peak_memory_mib']:.0f}",
            *(f"{ph[k]:.0f}" for k in ("reset", "sampler", "mae_forward", "objective", "backward", "optimizer")),
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    note = "dec tokens = tokens the decoder runs on per clip; phases in ms (median); mem = peak RSS on CPU, peak allocated on CUDA; MFU = GFLOP/s / peak GFLOP/s"
    return "\n".join([*lines, note])


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.getLogger("torchrl").setLevel(logging.WARNING)
    args = parse_args(argv)
    try:
        cases = expand(args)
        if args.record is not None:  # a child: one configuration, result to a file
            args.record.write_text(json.dumps(run_case(cases[0])))
            return 0
        records = []
        for case in cases:
            record = run_case(case) if len(cases) == 1 else run_isolated(case)
            records.append(record)
            if args.json:
                try:
                    with args.json.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(record) + "\n")
                except OSError as err:  # name the file: a full disk's error does not
                    raise OSError(err.errno, err.strerror, str(args.json)) from None
    except (BenchError, ValueError, KeyError, HydraException, OSError) as err:
        if isinstance(err, OSError) and not is_user_error(err):
            raise  # a bug, not a full disk or a missing file
        # Bad input (names, values, overrides) ends with one line; KeyError's text is its key.
        if isinstance(err, OSError):
            message = error_line(err)
        else:
            message = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
        print(f"error: {message.strip().splitlines()[0] if message.strip() else type(err).__name__}", file=sys.stderr)
        return 2
    print(format_table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
