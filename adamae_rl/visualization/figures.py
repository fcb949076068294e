"""Sheets (PNG, PDF or SVG) and animated GIFs of a :class:`~adamae_rl.visualization.render.Rendering`.

Columns (as the paper's qualitative figures): input | mask overlay | reconstruction | error map |
the policy's score map (softmax of a sampler's logits, or the ``scores`` a policy writes). Rows are
the clip's temporal slices (one frame per tubelet) in a per-clip sheet, or clips (their middle
slice) in the overview sheet. Policies with neither get an "n/a" score column.

The heat maps (error, score) carry a colour bar with their scale: per clip in a clip sheet, shared
by all clips in the overview (so that clips compare). :func:`comparison_figure` puts several
policies side by side on the same clip: rows = policies, columns = temporal slices.

Every ``save_*`` writes the format of its path's suffix (``.png``, ``.pdf``, ``.svg``); the
``*_figure`` functions return the matplotlib figure (for TensorBoard, or further editing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from adamae_rl.models.videomae import VideoMAE
from adamae_rl.visualization.render import Rendering, colorize, mask_overlay, tokens_to_pixels, training_snapshot

log = logging.getLogger("adamae_rl.visualize")

COLUMNS = ("input", "mask (grey = masked)", "reconstruction", "error", "policy score")
ERROR_CMAP, PROB_CMAP = "inferno", "viridis"
ERROR_COLUMN, SCORE_COLUMN = 3, 4
# Formats a sheet may be written in (matplotlib picks the writer by the suffix).
FORMATS = ("png", "pdf", "svg")
# Panels a comparison figure can show for each policy.
COMPARE_PANELS = ("mask", "reconstruction", "error", "score")


def heat_scales(r: Rendering, model: VideoMAE, clips: Sequence[int]) -> tuple[float, float | None]:
    """Top of the error and score colour scales over ``clips``: their largest pixel error and
    largest token score (None without a score map)."""
    error_max = max(float(r.error[b].max()) for b in clips)
    score_max = None if r.probability is None else max(float(r.probability[b].max()) for b in clips)
    return error_max, score_max


def clip_panels(r: Rendering, model: VideoMAE, b: int, error_max: float | None = None,
                score_max: float | None = None) -> list[torch.Tensor | None]:
    """The five panels of clip ``b`` as ``[3, T, H, W]`` videos in [0, 1] (None = not available).

    ``error_max`` / ``score_max`` are the tops of the two colour scales (default: the clip's own
    largest value, so that every time step of the clip shares one scale).
    """
    masked = tokens_to_pixels(r.mask[b : b + 1].float(), model)[0].bool()  # [T, H, W]
    panels = [r.input[b], mask_overlay(r.input[b], masked), r.reconstruction[b], colorize(r.error[b], ERROR_CMAP, error_max)]
    if r.probability is None:
        panels.append(None)
    else:
        prob = tokens_to_pixels(r.probability[b : b + 1], model)[0]
        panels.append(colorize(prob, PROB_CMAP, score_max))
    return panels


def _to_uint8(panel: torch.Tensor, frame: int) -> np.ndarray:
    """``[3, T, H, W]`` -> one frame ``[H, W, 3]`` uint8."""
    return (panel[:, frame].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _blank(shape: tuple[int, int]) -> np.ndarray:
    return np.full((*shape, 3), 235, dtype=np.uint8)


def _colorbar(fig, axes, cmap: str, top: float, label: str) -> None:
    """A colour bar from 0 to ``top`` beside ``axes`` (one axis or several)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(0.0, top if top > 0 else 1.0), cmap), ax=axes, shrink=0.9,
                       fraction=0.05, pad=0.02)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)
    bar.formatter.set_powerlimits((-2, 3))  # probabilities near 1/N read as 2e-3, not 0.002
    bar.update_ticks()
    bar.ax.yaxis.get_offset_text().set_fontsize(6)


def clip_sheet_figure(r: Rendering, model: VideoMAE, b: int, title: str):
    """Rows = temporal slices (first frame of each tubelet), columns = the five panels, with
    colour bars for the error and score maps (the clip's own scales)."""
    import matplotlib.pyplot as plt

    error_max, score_max = heat_scales(r, model, [b])
    panels = clip_panels(r, model, b, error_max, score_max)
    tn, t = model.cfg.grid[0], model.cfg.tubelet_size
    fig, axes = plt.subplots(tn, len(COLUMNS), figsize=(1.9 * len(COLUMNS) + 1.2, 1.7 * tn + 0.7), squeeze=False,
                             layout="constrained")
    for row in range(tn):
        frame = row * t
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            _show(ax, panel, frame, model.cfg.img_size)
            if row == 0:
                ax.set_title(COLUMNS[col] if panel is not None else f"{COLUMNS[col]}: n/a", fontsize=8)
        axes[row, 0].set_ylabel(f"t={frame}-{frame + t - 1}", fontsize=8)
    _heat_colorbars(fig, axes, r, error_max, score_max)
    fig.suptitle(title, fontsize=9)
    return fig


def overview_figure(r: Rendering, model: VideoMAE, title: str, clips: int | None = None):
    """Rows = clips (their middle temporal slice), columns = the five panels; the heat maps share
    one scale over the clips shown, with colour bars. ``clips``: the first that many (default all)."""
    import matplotlib.pyplot as plt

    clips = r.input.shape[0] if clips is None else min(clips, r.input.shape[0])
    frame = (model.cfg.grid[0] // 2) * model.cfg.tubelet_size
    error_max, score_max = heat_scales(r, model, range(clips))
    fig, axes = plt.subplots(clips, len(COLUMNS), figsize=(1.9 * len(COLUMNS) + 1.2, 1.7 * clips + 0.7),
                             squeeze=False, layout="constrained")
    for b in range(clips):
        for col, panel in enumerate(clip_panels(r, model, b, error_max, score_max)):
            _show(axes[b, col], panel, frame, model.cfg.img_size)
            if b == 0:
                axes[b, col].set_title(COLUMNS[col] if panel is not None else f"{COLUMNS[col]}: n/a", fontsize=8)
        axes[b, 0].set_ylabel(f"clip {b}, t={frame}", fontsize=8)
    _heat_colorbars(fig, axes, r, error_max, score_max)
    fig.suptitle(title, fontsize=9)
    return fig


def _heat_colorbars(fig, axes, r: Rendering, error_max: float, score_max: float | None) -> None:
    _colorbar(fig, axes[:, ERROR_COLUMN], ERROR_CMAP, error_max, "squared error")
    if score_max is not None:
        _colorbar(fig, axes[:, SCORE_COLUMN], PROB_CMAP, score_max, r.score_label)


def comparison_figure(renderings: Sequence[Rendering], names: Sequence[str], model: VideoMAE, b: int, title: str,
                      panel: str = "mask"):
    """Several policies on clip ``b`` of the same clips: rows = policies, columns = temporal slices.

    Args:
        renderings: one per policy, rendered on the same clips (and mask seed).
        names: the row labels.
        panel: what each row shows: ``mask`` (the input with the masked tokens greyed),
            ``reconstruction``, ``error`` (one scale and colour bar for all rows, so the rows
            compare) or ``score`` (each row its own scale and colour bar: policies score in
            different units; "n/a" for a policy without scores).
    """
    import matplotlib.pyplot as plt

    if panel not in COMPARE_PANELS:
        raise ValueError(f"panel must be one of {', '.join(COMPARE_PANELS)}, got {panel!r}")
    if len(renderings) != len(names) or not renderings:
        raise ValueError(f"one name per rendering: got {len(renderings)} renderings and {len(names)} names")
    tn, t = model.cfg.grid[0], model.cfg.tubelet_size
    error_max = max(heat_scales(r, model, [b])[0] for r in renderings)
    fig, axes = plt.subplots(len(renderings), tn, figsize=(1.5 * tn + 1.6, 1.5 * len(renderings) + 0.8),
                             squeeze=False, layout="constrained")
    for row, (r, name) in enumerate(zip(renderings, names)):
        score_max = heat_scales(r, model, [b])[1]
        panels = clip_panels(r, model, b, error_max, score_max)
        video = {"mask": panels[1], "reconstruction": panels[2], "error": panels[3], "score": panels[4]}[panel]
        for col in range(tn):
            frame = col * t
            _show(axes[row, col], video, frame, model.cfg.img_size)
            if row == 0:
                axes[row, col].set_title(f"t={frame}-{frame + t - 1}", fontsize=8)
        axes[row, 0].set_ylabel(name, fontsize=8)
        if panel == "score" and score_max is not None:
            _colorbar(fig, axes[row, :], PROB_CMAP, score_max, r.score_label)
    if panel == "error":
        _colorbar(fig, axes[:, :], ERROR_CMAP, error_max, "squared error")
    fig.suptitle(title, fontsize=9)
    return fig


def training_figure(model: VideoMAE, policy, env, seed: int, title: str, clips: int = 2):
    """The overview sheet of the first ``clips`` clips of a held-out ``env``, for logging during
    training: the caller's random state and the modules' modes are left as they were
    (:func:`~adamae_rl.visualization.render.training_snapshot`).

    Returns None, with a warning, when the policy cannot be rendered (a plug-in policy that reads
    more than a clip's observation): a diagnostic figure never stops a training run.
    """
    try:
        rendering = training_snapshot(model, policy, env, seed, clips)
    except Exception as err:  # noqa: BLE001 - any failure of a plug-in policy: warn, keep training
        log.warning("mask figure skipped: rendering the policy failed (%s: %s)", type(err).__name__, err)
        return None
    return overview_figure(rendering, model, title)


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` in the format of ``path``'s suffix (png, pdf or svg) and free it."""
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix not in FORMATS:
        plt.close(fig)
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)} (the path's suffix), got {str(path)!r}")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def save_clip_sheet(r: Rendering, model: VideoMAE, b: int, path: Path, title: str) -> Path:
    """:func:`clip_sheet_figure` written to ``path`` (format by suffix)."""
    return save_figure(clip_sheet_figure(r, model, b, title), path)


def save_overview(r: Rendering, model: VideoMAE, path: Path, title: str) -> Path:
    """:func:`overview_figure` written to ``path`` (format by suffix)."""
    return save_figure(overview_figure(r, model, title), path)


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
