"""``python -m adamae_rl.visualize RUN_DIR [RUN_DIR ...]``: what masking policies hide and what the MAE rebuilds.

Examples::

    python -m adamae_rl.visualize runs/adaptive-tiny-synthetic-m0.9-s0
    python -m adamae_rl.visualize RUN_DIR --clips 6 --out figures/adaptive --format png,pdf
    python -m adamae_rl.visualize runs/adaptive-... runs/random-... runs/tube-... --out figures/compare

With one run, for the first ``--clips`` held-out clips of the run's data, writes to ``--out``
(default ``RUN_DIR/visualize``):

- ``clip_K.png``: rows = temporal slices, columns = input | mask overlay | reconstruction |
  error map | policy score (softmax of the adaptive policy's logits, the ``scores`` that motion,
  embedding_change and loss_predictor write; "n/a" for policies with neither); the error and
  score maps carry colour bars (the clip's own scale);
- ``clip_K.gif``: the same panels, animated over every frame;
- ``overview.png``: rows = clips (middle slice), the same columns; one colour scale per heat map
  column, shared by the clips.

With several runs (one per policy, e.g. the cells of an ablation), writes ``compare_clip_K.png``
to ``--out`` (default ``FIRST_RUN_DIR/visualize-compare``): rows = the runs' policies, columns =
temporal slices, all on the same held-out clips (the first run's data) with the same mask seed.
``--panel`` picks what each row shows: ``mask`` (default), ``reconstruction``, ``error`` (one
shared colour scale) or ``score`` (one scale per row). The runs must share the clip geometry.

``--format png,pdf,svg``: the sheets in each listed format (GIFs stay GIFs). Masks are drawn with
a fixed seed, so the same command draws the same masks. At most ``MAX_CLIPS`` clips: they are
rendered as one batch. Files in ``--out`` that ``visualize`` did not write are never overwritten
(``--force`` overwrites them).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import torch  # noqa: E402

from adamae_rl.api import geometry_of  # noqa: E402
from adamae_rl.builders import load_run  # noqa: E402
from adamae_rl.cli import ArgumentParser, run_command, setup_logging  # noqa: E402
from adamae_rl.data.factory import make_dataset  # noqa: E402
from adamae_rl.errors import ConfigError  # noqa: E402
from adamae_rl.utils.files import OutputDir  # noqa: E402
from adamae_rl.visualization.figures import (  # noqa: E402
    COMPARE_PANELS, FORMATS, comparison_figure, save_clip_gif, save_clip_sheet, save_figure, save_overview,
)
from adamae_rl.visualization.render import render  # noqa: E402
from adamae_rl.metrics import foreground_enrichment  # noqa: E402

log = logging.getLogger("adamae_rl.visualize")

# Clips are rendered as one batch (reconstructions, error maps, every frame of every GIF): 64
# tiny clips take about 0.3 GB, 64 vit_b clips a few GB; more is refused rather than killed.
MAX_CLIPS = 64


def held_out_clips(cfg: dict, run_geometry, count: int) -> dict[str, torch.Tensor]:
    """The first ``count`` clips of the run's validation split, batched.

    Returns:
        ``video`` ``[B, C, T, H, W]`` and, when the data has them, ``fg_tokens`` bool ``[B, N]``.
    """
    data = dict(cfg["data"])
    if data.get("name") == "synthetic":
        data["val_clips"] = max(count, 1)
    dataset = make_dataset(data, "val", run_geometry, int(cfg["trainer"]["seed"]))
    if count > len(dataset):
        raise ConfigError(f"asked for {count} clips, the validation set has {len(dataset)}")
    items = [dataset[i] for i in range(count)]
    out = {"video": torch.stack([it["video"] for it in items])}
    if all("fg_tokens" in it for it in items):
        out["fg_tokens"] = torch.stack([it["fg_tokens"] for it in items])
    return out


def check_formats(formats: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"png,pdf"`` or ``("png", "pdf")`` -> ``("png", "pdf")``, each one of ``FORMATS``."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    chosen = tuple(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise ConfigError(f"--format takes a comma-separated list of {', '.join(FORMATS)}; got {formats!r}")
    return chosen


def _check_clips(clips: int) -> None:
    if not 1 <= clips <= MAX_CLIPS:
        raise ConfigError(f"--clips must be in 1..{MAX_CLIPS} (clips are rendered as one batch), got {clips}")


def visualize(run_dir: str | Path, clips: int = 4, out: str | Path | None = None, seed: int = 0,
              checkpoint: str = "last.pt", imports: tuple[str, ...] = (), allow_targets: tuple[str, ...] = (),
              force: bool = False, formats: str | tuple[str, ...] = ("png",)) -> list[Path]:
    """Write the sheets (in each of ``formats``) and GIFs for ``run_dir``; returns the written paths.

    ``imports`` / ``allow_targets``: see :func:`adamae_rl.builders.load_run` (a checkpoint's
    own plugin imports and ``_target_`` are never followed without them).
    """
    _check_clips(clips)
    formats = check_formats(formats)
    folder = OutputDir(Path(out) if out else Path(run_dir) / "visualize", "visualize", force=force,
                       inputs=[Path(run_dir) / "checkpoints"])
    cfg, model, policy, ckpt = load_run(run_dir, checkpoint, imports=imports, allow_targets=allow_targets)
    # claimed once the run loads (a refused checkpoint leaves no folder), before the rendering
    folder.claim(*(f"overview.{ext}" for ext in formats),
                 *(f"clip_{b}.{ext}" for b in range(clips) for ext in (*formats, "gif")))
    out_dir = folder.path
    batch = held_out_clips(cfg, geometry_of(model), clips)
    torch.manual_seed(seed)  # mask draws
    r = render(model, policy, batch["video"], batch.get("fg_tokens"))
    title = f"{_policy_name(cfg)}, mask ratio {policy.effective_mask_ratio:.3f}, step {ckpt['step']}"
    if r.fg_tokens is not None:
        title += f", fg enrichment {foreground_enrichment(r.mask, r.fg_tokens):.2f}"
    written = [save_overview(r, model, out_dir / f"overview.{ext}", title) for ext in formats]
    for b in range(clips):
        written += [save_clip_sheet(r, model, b, out_dir / f"clip_{b}.{ext}", f"{title} - clip {b}") for ext in formats]
        written.append(save_clip_gif(r, model, b, out_dir / f"clip_{b}.gif"))
    return written


def _policy_name(cfg: dict) -> str:
    return str(cfg["policy"].get("name") or cfg["policy"].get("_target_"))


def compare(run_dirs: list[str | Path] | tuple[str | Path, ...], clips: int = 1, out: str | Path | None = None,
            seed: int = 0, checkpoint: str = "last.pt", imports: tuple[str, ...] = (),
            allow_targets: tuple[str, ...] = (), force: bool = False, formats: str | tuple[str, ...] = ("png",),
            panel: str = "mask") -> list[Path]:
    """Several runs' policies side by side on the same clips: ``compare_clip_K.<format>`` per clip,
    rows = runs, columns = temporal slices (see :func:`~adamae_rl.visualization.figures.comparison_figure`).

    The clips are the first run's held-out clips; every policy draws its masks after the same
    ``torch.manual_seed(seed)``. Returns the written paths.

    Raises:
        ConfigError: fewer than two runs, runs of different clip geometry, a bad ``panel``.
    """
    _check_clips(clips)
    formats = check_formats(formats)
    if len(run_dirs) < 2:
        raise ConfigError(f"a comparison needs at least two run directories, got {len(run_dirs)}")
    if panel not in COMPARE_PANELS:
        raise ConfigError(f"--panel must be one of {', '.join(COMPARE_PANELS)}, got {panel!r}")
    first = Path(run_dirs[0])
    folder = OutputDir(Path(out) if out else first / "visualize-compare", "visualize", force=force,
                       inputs=[Path(d) / "checkpoints" for d in run_dirs])
    loaded = [load_run(d, checkpoint, imports=imports, allow_targets=allow_targets) for d in run_dirs]
    geometry = geometry_of(loaded[0][1])
    for run_dir, (_, model, _, _) in zip(run_dirs, loaded):
        if geometry_of(model) != geometry:
            raise ConfigError(f"{run_dir} expects clips of {geometry_of(model)}, {first} of {geometry}: "
                              "a comparison shows the same clips to every policy")
    folder.claim(*(f"compare_clip_{b}.{ext}" for b in range(clips) for ext in formats))
    batch = held_out_clips(loaded[0][0], geometry, clips)
    renderings, names = [], []
    for cfg, model, policy, ckpt in loaded:
        torch.manual_seed(seed)  # the same mask draws for every policy
        r = render(model, policy, batch["video"], batch.get("fg_tokens"))
        renderings.append(r)
        name = f"{_policy_name(cfg)}\nr={policy.effective_mask_ratio:.3f}"
        if r.fg_tokens is not None:
            name += f", fg {foreground_enrichment(r.mask, r.fg_tokens):.2f}"
        names.append(name)
    if len(set(names)) < len(names):  # the same policy twice (e.g. two seeds): tell the rows apart by run
        names = [f"{n}\n{Path(d).name}" for n, d in zip(names, run_dirs)]
    written = []
    for b in range(clips):
        for ext in formats:
            fig = comparison_figure(renderings, names, loaded[0][1], b, f"clip {b}: {panel}", panel)
            written.append(save_figure(fig, folder.path / f"compare_clip_{b}.{ext}"))
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m adamae_rl.visualize", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="a pre-training run directory (holds checkpoints/last.pt); several: compare their policies")
    p.add_argument("--clips", type=int, default=4, help=f"held-out clips to show (at most {MAX_CLIPS})")
    p.add_argument("--out", type=Path,
                   help="output folder (default: RUN_DIR/visualize, or FIRST_RUN_DIR/visualize-compare)")
    p.add_argument("--format", dest="formats", default="png",
                   help=f"comma-separated formats of the sheets: {', '.join(FORMATS)}")
    p.add_argument("--panel", default="mask", choices=COMPARE_PANELS,
                   help="with several runs: what each policy's row shows")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask draws")
    p.add_argument("--force", action="store_true", help="overwrite files in --out that visualize did not write")
    p.add_argument("--checkpoint", default="last.pt", help="checkpoint file under RUN_DIR/checkpoints")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                   help="import MODULE first (where the run's plugin policy is registered); repeatable")
    p.add_argument("--allow-target", dest="allow_targets", action="append", default=[], metavar="PATH",
                   help="trust the run's policy _target_ PATH (a MaskingPolicy subclass); repeatable")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    args = parse_args(argv)
    common = dict(clips=args.clips, out=args.out, seed=args.seed, checkpoint=args.checkpoint,
                  imports=tuple(args.imports), allow_targets=tuple(args.allow_targets), force=args.force,
                  formats=args.formats)
    if len(args.run_dirs) == 1:
        written = run_command(lambda: visualize(args.run_dirs[0], **common), setup=False)
    else:
        written = run_command(lambda: compare(args.run_dirs, panel=args.panel, **common), setup=False)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
