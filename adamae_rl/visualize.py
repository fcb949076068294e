"""``python -m adamae_rl.visualize RUN_DIR``: what the masking policy hides and what the MAE rebuilds.

Examples::

    python -m adamae_rl.visualize runs/adaptive-tiny-synthetic-m0.9-s0
    python -m adamae_rl.visualize RUN_DIR --clips 6 --out figures/adaptive

For the first ``--clips`` held-out clips of the run's data, writes to ``--out`` (default
``RUN_DIR/visualize``):

- ``clip_K.png``: rows = temporal slices, columns = input | mask overlay | reconstruction |
  error map | policy score (softmax of the adaptive policy's logits, the ``scores`` that motion,
  embedding_change and loss_predictor write; "n/a" for policies with neither);
- ``clip_K.gif``: the same panels, animated over every frame;
- ``overview.png``: rows = clips (middle slice), the same columns.

Masks are drawn with a fixed seed, so the same command draws the same masks. At most
``MAX_CLIPS`` clips: they are rendered as one batch. Files in ``--out`` that ``visualize`` did
not write are never overwritten (``--force`` overwrites them).
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
from adamae_rl.visualization.figures import save_clip_gif, save_clip_sheet, save_overview  # noqa: E402
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


def visualize(run_dir: str | Path, clips: int = 4, out: str | Path | None = None, seed: int = 0,
              checkpoint: str = "last.pt", imports: tuple[str, ...] = (), allow_targets: tuple[str, ...] = (),
              force: bool = False) -> list[Path]:
    """Write the sheets and GIFs for ``run_dir``; returns the written paths.

    ``imports`` / ``allow_targets``: see :func:`adamae_rl.builders.load_run` (a checkpoint's
    own plugin imports and ``_target_`` are never followed without them).
    """
    if not 1 <= clips <= MAX_CLIPS:
        raise ConfigError(f"--clips must be in 1..{MAX_CLIPS} (clips are rendered as one batch), got {clips}")
    folder = OutputDir(Path(out) if out else Path(run_dir) / "visualize", "visualize", force=force,
                       inputs=[Path(run_dir) / "checkpoints"])
    cfg, model, policy, ckpt = load_run(run_dir, checkpoint, imports=imports, allow_targets=allow_targets)
    # claimed once the run loads (a refused checkpoint leaves no folder), before the rendering
    folder.claim("overview.png", *(f"clip_{b}.{ext}" for b in range(clips) for ext in ("png", "gif")))
    out_dir = folder.path
    batch = held_out_clips(cfg, geometry_of(model), clips)
    torch.manual_seed(seed)  # mask draws
    r = render(model, policy, batch["video"], batch.get("fg_tokens"))
    name = cfg["policy"].get("name")
    title = f"{name}, mask ratio {policy.effective_mask_ratio:.3f}, step {ckpt['step']}"
    if r.fg_tokens is not None:
        title += f", fg enrichment {foreground_enrichment(r.mask, r.fg_tokens):.2f}"
    written = [save_overview(r, model, out_dir / "overview.png", title)]
    for b in range(clips):
        written.append(save_clip_sheet(r, model, b, out_dir / f"clip_{b}.png", f"{title} - clip {b}"))
        written.append(save_clip_gif(r, model, b, out_dir / f"clip_{b}.gif"))
    return written


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m adamae_rl.visualize", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a pre-training run directory (holds checkpoints/last.pt)")
    p.add_argument("--clips", type=int, default=4, help=f"held-out clips to show (at most {MAX_CLIPS})")
    p.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/visualize)")
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
    written = run_command(lambda: visualize(args.run_dir, args.clips, args.out, args.seed, args.checkpoint,
                                            tuple(args.imports), tuple(args.allow_targets), args.force), setup=False)
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
