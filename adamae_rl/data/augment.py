"""Fine-tuning augmentation of video clips, as VideoMAE's fine-tuning recipe uses it.

- :func:`random_resized_crop_box`: a crop of random area share and aspect ratio (Inception-style).
- :class:`RandAugment`: ``num_ops`` random image operations of magnitude ``magnitude`` (of 10, with
  Gaussian jitter ``magnitude_std``), each applied with probability 1/2 — the same operations and
  magnitudes on every frame of a clip, so motion is not disturbed (``rand-m7-n4-mstd0.5-inc1``:
  the "increasing" operation set, in which a larger magnitude is always a stronger change).
- :func:`random_erasing`: with probability ``prob`` per frame, a random box filled with Gaussian noise.
- :func:`mixup_cutmix`: Mixup or CutMix of a batch with its reverse, and the mixed, label-smoothed
  soft targets (one mixing weight per batch, as ``mode=batch``).

Pixel operations work on float frames ``[T, 3, H, W]`` in [0, 255]; randomness comes from a
``numpy.random.Generator`` (per item from its sample key; per batch from the run's seed and step),
never from global RNG state. TorchVision/timm, where these live elsewhere, do not load with every torch
build this toolkit supports, so they are written here on plain tensor operations.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from adamae_rl.data.video import CropBox
from adamae_rl.errors import ConfigError

# ------------------------------------------------------------------------------------------- crop


def random_resized_crop_box(
    height: int, width: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> CropBox:
    """A box of area ``U(scale) * H * W`` and aspect ratio ``exp(U(log ratio))``, uniform in position;
    after 10 draws that do not fit, the largest centred box within ``ratio``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return CropBox(int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1)), h, w)
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        h, w = height, round(height * ratio[1])
    else:
        h, w = height, width
    return CropBox((height - h) // 2, (width - w) // 2, h, w)


# ------------------------------------------------------------------------------------ RandAugment


def _blend(a: torch.Tensor, b: torch.Tensor, factor: float) -> torch.Tensor:
    """``b + factor * (a - b)``, clipped to [0, 255] (PIL's ImageEnhance: factor 1 = ``a``)."""
    return (b + factor * (a - b)).clamp_(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """Luma of ``[T, 3, H, W]`` as ``[T, 1, H, W]`` (ITU-R 601, PIL's convert('L'))."""
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])


def _affine(x: torch.Tensor, matrix: list[list[float]]) -> torch.Tensor:
    """Resample ``x`` with a 2x3 affine map in normalized coordinates; outside is gray 128."""
    theta = torch.tensor(matrix, dtype=x.dtype).unsqueeze(0).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    inside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="nearest", align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + 128.0 * (1 - inside)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each channel of each frame (values rounded to 0..255)."""
    flat = x.round().clamp(0, 255).long().flatten(2)  # [T, 3, HW]
    hist = torch.zeros(*flat.shape[:2], 256, dtype=torch.float32).scatter_add_(2, flat, torch.ones_like(flat, dtype=torch.float32))
    cdf = hist.cumsum(2)
    lo = torch.where(hist > 0, cdf - hist, torch.full_like(cdf, float("inf"))).amin(2, keepdim=True)  # first bin's start
    span = (cdf[..., -1:] - lo).clamp(min=1)
    lut = ((cdf - lo) / span * 255).clamp(0, 255)
    return lut.gather(2, flat).view_as(x)


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    return torch.where(hi > lo, (x - lo) * 255 / (hi - lo).clamp(min=1e-6), x)


def _sharpen(x: torch.Tensor, factor: float) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], dtype=x.dtype) / 13
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3).contiguous(), groups=3)
    return _blend(x, smooth, factor)


def _signed(value: float, rng: np.random.Generator) -> float:
    return -value if rng.random() < 0.5 else value


def _apply(name: str, x: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
    """One operation at ``level`` in [0, 1] (magnitude / 10) on float frames ``[T, 3, H, W]`` in [0, 255]."""
    height, width = x.shape[-2:]
    if name == "auto_contrast":
        return _autocontrast(x)
    if name == "equalize":
        return _equalize(x)
    if name == "invert":
        return 255 - x
    if name == "rotate":
        angle = math.radians(_signed(30 * level, rng))
        c, s = math.cos(angle), math.sin(angle)
        return _affine(x, [[c, -s * height / width, 0], [s * width / height, c, 0]])
    if name == "posterize":  # increasing: fewer bits kept
        bits = max(4 - int(4 * level), 1)
        step = 2 ** (8 - bits)
        return torch.div(x.round(), step, rounding_mode="floor") * step
    if name == "solarize":  # increasing: a lower threshold
        threshold = 256 - 256 * level
        return torch.where(x >= threshold, 255 - x, x)
    if name == "solarize_add":
        return torch.where(x < 128, (x + 110 * level).clamp(max=255), x)
    if name in ("color", "contrast", "brightness", "sharpness"):  # increasing: further from 1
        factor = 1 + _signed(0.9 * level, rng)
        if name == "color":
            return _blend(x, _gray(x).expand_as(x), factor)
        if name == "contrast":
            return _blend(x, _gray(x).mean(dim=(1, 2, 3), keepdim=True).expand_as(x), factor)
        if name == "brightness":
            return _blend(x, torch.zeros_like(x), factor)
        return _sharpen(x, factor)
    if name in ("shear_x", "shear_y"):
        shear = _signed(0.3 * level, rng)
        matrix = [[1, shear * height / width, 0], [0, 1, 0]] if name == "shear_x" else [[1, 0, 0], [shear * width / height, 1, 0]]
        return _affine(x, matrix)
    if name in ("translate_x", "translate_y"):  # a share of the side, as timm's TranslateXRel
        shift = 2 * _signed(0.45 * level, rng)  # normalized coordinates span 2
        return _affine(x, [[1, 0, shift], [0, 1, 0]] if name == "translate_x" else [[1, 0, 0], [0, 1, shift]])
    raise ValueError(f"unknown RandAugment operation {name!r}")


class RandAugment:
    """``num_ops`` operations drawn with replacement from :attr:`OPS`, each applied with probability
    ``prob``, at magnitude ``N(magnitude, magnitude_std)`` clipped to [0, 10]; the same draws for
    every frame of the clip.

    Call: float frames ``[T, 3, H, W]`` in [0, 255], a generator -> the same shape.
    """

    OPS = (
        "auto_contrast", "equalize", "invert", "rotate", "posterize", "solarize", "solarize_add", "color",
        "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
    )

    def __init__(self, num_ops: int = 4, magnitude: float = 7.0, magnitude_std: float = 0.5, prob: float = 0.5) -> None:
        if num_ops < 0 or not 0 <= magnitude <= 10 or magnitude_std < 0 or not 0 <= prob <= 1:
            raise ConfigError(f"RandAugment needs num_ops >= 0, magnitude in [0, 10], magnitude_std >= 0 and prob in "
                             f"[0, 1]; got {num_ops}, {magnitude}, {magnitude_std}, {prob}")
        self.num_ops, self.magnitude, self.magnitude_std, self.prob = num_ops, magnitude, magnitude_std, prob

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for name in rng.choice(self.OPS, size=self.num_ops, replace=True):
            if rng.random() >= self.prob:
                continue
            magnitude = self.magnitude + (rng.normal(0, self.magnitude_std) if self.magnitude_std else 0.0)
            frames = _apply(str(name), frames, min(max(magnitude, 0.0), 10.0) / 10, rng)
        return frames


# ---------------------------------------------------------------------------------- random erasing


def random_erasing(
    clip: torch.Tensor, prob: float, rng: np.random.Generator, area: tuple[float, float] = (0.02, 1 / 3),
    log_ratio: tuple[float, float] = (math.log(0.3), math.log(1 / 0.3)),
) -> torch.Tensor:
    """Per frame, with probability ``prob``, one box of ``area`` share filled with N(0, 1) noise
    (a normalized clip: noise of the data's own scale). ``clip``: ``[C, T, H, W]``; changed in place."""
    channels, frames, height, width = clip.shape
    for t in range(frames):
        if rng.random() >= prob:
            continue
        for _ in range(10):
            target = height * width * rng.uniform(*area)
            aspect = math.exp(rng.uniform(*log_ratio))
            h, w = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if h < height and w < width:
                top, left = int(rng.integers(height - h + 1)), int(rng.integers(width - w + 1))
                noise = torch.from_numpy(rng.standard_normal((channels, h, w)).astype(np.float32))
                clip[:, t, top:top + h, left:left + w] = noise.to(clip.dtype)
                break
    return clip


# ---------------------------------------------------------------------------------- Mixup / CutMix


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """``[B]`` -> ``[B, K]``: ``1 - smoothing + smoothing / K`` on the label, ``smoothing / K`` elsewhere."""
    off = smoothing / num_classes
    return torch.full((labels.shape[0], num_classes), off).scatter_(1, labels.view(-1, 1).cpu(), 1 - smoothing + off)


def mixup_cutmix(
    video: torch.Tensor, labels: torch.Tensor, num_classes: int, rng: np.random.Generator,
    mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0, switch_prob: float = 0.5,
    smoothing: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with its reverse (clip ``i`` with clip ``B - 1 - i``).

    With probability ``prob``: CutMix (probability ``switch_prob`` when both are on) pastes one
    box of the reversed batch into every frame, ``lam`` = the share of the clip left unchanged;
    else Mixup blends whole clips with ``lam ~ Beta(mixup_alpha, mixup_alpha)``.

    Args:
        video: ``[B, C, T, H, W]``. labels: int64 ``[B]``.
    Returns:
        the mixed video (a new tensor) and soft targets ``[B, K]`` on ``video``'s device, each row
        summing to 1: ``lam * smooth(y) + (1 - lam) * smooth(y reversed)``.
    """
    lam, mixed = 1.0, video
    if rng.random() < prob and (mixup_alpha > 0 or cutmix_alpha > 0):
        use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < switch_prob)
        alpha = cutmix_alpha if use_cutmix else mixup_alpha
        lam = float(rng.beta(alpha, alpha))
        if use_cutmix:
            top, bottom, left, right = _cut_box(video.shape[-2], video.shape[-1], lam, rng)
            mixed = video.clone()
            mixed[..., top:bottom, left:right] = video.flip(0)[..., top:bottom, left:right]
            lam = 1 - (bottom - top) * (right - left) / (video.shape[-2] * video.shape[-1])
        else:
            mixed = video * lam + video.flip(0) * (1 - lam)
    target = smoothed_one_hot(labels, num_classes, smoothing)
    soft = lam * target + (1 - lam) * target.flip(0)
    return mixed, soft.to(video.device)


def _cut_box(height: int, width: int, lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A box of about ``1 - lam`` of the frame around a uniform centre, clipped to the frame:
    ``(top, bottom, left, right)``."""
    cut = math.sqrt(1 - lam)
    ch, cw = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    return max(cy - ch // 2, 0), min(cy + ch // 2, height), max(cx - cw // 2, 0), min(cx + cw // 2, width)
