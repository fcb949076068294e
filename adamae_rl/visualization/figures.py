"""PNG sheets and animated GIFs of a :class:`~adamae_rl.visualization.render.Rendering`.

Columns (as the paper's qualitative figures): input | mask overlay | reconstruction | error map |
the policy's score map (softmax of a sampler's logits, or the ``scores`` a policy writes). Rows are
the clip's temporal slices (one frame per tubelet) in a per-clip sheet, or clips (their middle
slice) in the overview sheet. Policies with neither get an "n/a" score column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adamae_rl.visualization.render import Rendering, colorize, mask_overlay, tokens_to_pixels
from adamae_rl.models.videomae import VideoMAE

COLUMNS = ("input", "mask (grey = masked)", "reconstruction", "error", "policy score")
ERROR_CMAP, PROB_CMAP = "inferno", "viridis"


def clip_panels(r: Rendering, model: VideoMAE, b: int) -> list[torch.Tensor | None]:
    """The five panels of clip ``b`` as ``[3, T, H, W]`` videos in [0, 1] (None = not available).

    Colour scales are per clip: the error map's top is the clip's largest error, the probability
    map's top the clip's largest token probability, so every time step shares one scale.
    """
    masked = tokens_to_pixels(r.mask[b : b + 1].float(), model)[0].bool()  # [T, H, W]
    panels = [r.input[b], mask_overlay(r.input[b], masked), r.reconstruction[b], colorize(r.error[b], ERROR_CMAP)]
    if r.probability is None:
        panels.append(None)
    else:
        prob = tokens_to_pixels(r.probability[b : b + 1], model)[0]
        panels.append(colorize(prob, PROB_CMAP))
    return panels


def _to_uint8(panel: torch.Tensor, frame: int) -> np.ndarray:
    """``[3, T, H, W]`` -> one frame ``[H, W, 3]`` uint8."""
    return (panel[:, frame].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _blank(shape: tuple[int, int]) -> np.ndarray:
    return np.full((*shape, 3), 235, dtype=np.uint8)


def save_clip_sheet(r: Rendering, model: VideoMAE, b: int, path: Path, title: str) -> Path:
    """PNG: rows = temporal slices (first frame of each tubelet), columns = the five panels."""
    import matplotlib.pyplot as plt

    panels = clip_panels(r, model, b)
    tn, t = model.cfg.grid[0], model.cfg.tubelet_size
    fig, axes = plt.subplots(tn, len(COLUMNS), figsize=(1.7 * len(COLUMNS), 1.7 * tn + 0.6), squeeze=False)
    for row in range(tn):
        frame = row * t
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            _show(ax, panel, frame, model.cfg.img_size)
            if row == 0:
                ax.set_title(COLUMNS[col] if panel is not None else f"{COLUMNS[col]}: n/a", fontsize=8)
        axes[row, 0].set_ylabel(f"t={frame}-{frame + t - 1}", fontsize=8)
    return _save(fig, title, path)


def save_overview(r: Rendering, model: VideoMAE, path: Path, title: str) -> Path:
    """PNG: rows = clips (their middle temporal slice), columns = the five panels."""
    import matplotlib.pyplot as plt

    clips = r.input.shape[0]
    frame = (model.cfg.grid[0] // 2) * model.cfg.tubelet_size
    fig, axes = plt.subplots(clips, len(COLUMNS), figsize=(1.7 * len(COLUMNS), 1.7 * clips + 0.6), squeeze=False)
    for b in range(clips):
        for col, panel in enumerate(clip_panels(r, model, b)):
            _show(axes[b, col], panel, frame, model.cfg.img_size)
            if b == 0:
                axes[b, col].set_title(COLUMNS[col] if panel is not None else f"{COLUMNS[col]}: n/a", fontsize=8)
        axes[b, 0].set_ylabel(f"clip {b}, t={frame}", fontsize=8)
    return _save(fig, title, path)


def _save(fig, title: str, path: Path) -> Path:
    """Title, tight layout, write the PNG, free the figure."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _show(ax, panel: torch.Tensor | None, frame: int, size: int) -> None:
    if panel is None:
        ax.imshow(_blank((size, size)))
        ax.text(size / 2, size / 2, "n/a", ha="center", va="center", fontsize=10, color="0.4")
    else:
        ax.imshow(_to_uint8(panel, frame), interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])


def save_clip_gif(r: Rendering, model: VideoMAE, b: int, path: Path, scale: int = 3, ms_per_frame: int = 160) -> Path:
    """Animated GIF of clip ``b``: the five panels side by side, one GIF frame per video frame."""
    from PIL import Image, ImageDraw

    panels = clip_panels(r, model, b)
    size, gap, header = model.cfg.img_size * scale, 4, 14
    names = ("input", "mask", "recon", "error", "p(visible)")
    width = len(panels) * size + (len(panels) - 1) * gap
    frames = []
    for frame in range(model.cfg.num_frames):
        canvas = Image.new("RGB", (width, size + header), (255, 255, 255))
        draw = ImageDraw.Draw(canvas)
        for col, panel in enumerate(panels):
            x = col * (size + gap)
            tile = _blank((size, size)) if panel is None else _to_uint8(panel, frame)
            image = Image.fromarray(tile).resize((size, size), Image.NEAREST)
            canvas.paste(image, (x, header))
            label = names[col] if panel is not None else f"{names[col]}: n/a"
            draw.text((x + 2, 1), label, fill=(0, 0, 0))
        draw.text((width - 40, 1), f"t={frame}", fill=(0, 0, 0))
        frames.append(canvas)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    return path
