"""Built-in default data: moving shapes over a static textured background.

Each clip shows 1-3 textured shapes (square, disc, diamond) that all move in the same
direction at their own constant speed over a static, smoothly textured background. A clip is a
pure function of ``(seed, index)``: the same pair always renders the same pixels, on any machine,
so runs are reproducible and no files are needed.

Every item carries:

- ``video``: float ``[C=3, T, H, W]``, ImageNet-normalized;
- ``label``: int64 scalar, the class of the chosen label set (``label=``, see :data:`LABELS`); by
  default the motion direction class ``0..7`` = the angle ``label * 45°`` counter-clockwise from
  "moving right" (0 right, 2 up, 4 left, 6 down; image y grows downward);
- ``fg_tokens``: bool ``[N]``: the tubelet token ``(t h w)`` covers at least one pixel of a
  moving shape in at least one of its frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from adamae_rl.data.loader import SampleKey, split_key
from adamae_rl.data.sources import register_data_source
from adamae_rl.geometry import ClipGeometry
from adamae_rl.data.transforms import normalize

NUM_DIRECTIONS = 8
SHAPES = ("square", "disc", "diamond")
# Shapes move at size/64 * (0.8 .. 2.0) px per frame; "fast" is the upper half of that range.
FAST_SPEED = 1.4

# Label sets a clip can carry (``label=`` of the data source). Appearance and motion together make
# the benchmark need an encoder that knows *what* moves and *where to*.
LABELS = ("direction", "shape", "count", "speed", "direction_shape")


@dataclass(frozen=True)
class ClipFacts:
    """What a clip shows: motion direction class, the shapes' kinds (indices into SHAPES), their
    radii and speeds in pixels (per frame), in drawing order."""

    direction: int
    kinds: tuple[int, ...]
    radii: tuple[float, ...]
    speeds: tuple[float, ...]


def num_label_classes(label: str, max_shapes: int = 3) -> int:
    """Number of classes of a label set in :data:`LABELS`."""
    counts = {"direction": NUM_DIRECTIONS, "shape": len(SHAPES), "count": max_shapes, "speed": 2,
              "direction_shape": NUM_DIRECTIONS * len(SHAPES)}
    if label not in counts:
        raise ValueError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
    return counts[label]


def clip_label(facts: ClipFacts, label: str, img_size: int) -> int:
    """The class of one clip under a label set: ``direction`` 0..7; ``shape`` the largest shape's
    kind (0 square, 1 disc, 2 diamond); ``count`` shapes - 1; ``speed`` 1 if the shapes' mean speed
    is fast (> FAST_SPEED * size/64 px per frame), else 0; ``direction_shape`` direction * 3 + shape."""
    largest = facts.kinds[max(range(len(facts.radii)), key=lambda i: facts.radii[i])]
    if label == "direction":
        return facts.direction
    if label == "shape":
        return largest
    if label == "count":
        return len(facts.kinds) - 1
    if label == "speed":
        return int(sum(facts.speeds) / len(facts.speeds) > FAST_SPEED * img_size / 64)
    if label == "direction_shape":
        return facts.direction * len(SHAPES) + largest
    raise ValueError(f"label must be one of {', '.join(LABELS)}; got {label!r}")


def pixel_mask_to_tokens(fg: torch.Tensor, patch_size: int, tubelet_size: int) -> torch.Tensor:
    """Reduce a per-pixel mask to per-token flags.

    Args:
        fg: bool ``[..., T, H, W]``.
    Returns:
        bool ``[..., N]`` in ``(t h w)`` order: True where any pixel of the tubelet is set.
    """
    *lead, t_len, h, w = fg.shape
    t, p = tubelet_size, patch_size
    tubes = fg.reshape(*lead, t_len // t, t, h // p, p, w // p, p)
    tubes = tubes.any(dim=-1).any(dim=-2).any(dim=-3)  # drop p (W), p (H), t
    return tubes.reshape(*lead, -1)


class SyntheticClips(Dataset):
    """Deterministic moving-shapes clips.

    Args:
        num_clips: dataset length (indices ``0 .. num_clips-1``).
        num_frames: frames per clip ``T``.
        img_size: square frame side ``H = W`` in pixels.
        patch_size, tubelet_size: token geometry, used for ``fg_tokens``.
        seed: selects the family of clips; train and validation use different seeds.
        max_shapes: at most this many shapes per clip (at least one).
        label: which label set ``label`` holds (see :data:`LABELS` and :func:`clip_label`).
    """

    def __init__(
        self,
        num_clips: int = 100_000,
        num_frames: int = 16,
        img_size: int = 64,
        patch_size: int = 8,
        tubelet_size: int = 2,
        seed: int = 0,
        max_shapes: int = 3,
        label: str = "direction",
    ) -> None:
        ClipGeometry(num_frames, img_size, patch_size, tubelet_size)  # refuses sizes that do not divide
        if num_clips < 1 or max_shapes < 1:
            raise ValueError(f"num_clips={num_clips} and max_shapes={max_shapes} must be >= 1")
        self.num_classes = num_label_classes(label, max_shapes)  # also refuses an unknown label set
        self.label = label
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.seed = seed
        self.max_shapes = max_shapes

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        index, _ = split_key(key)  # synthetic clips need no per-draw randomness
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        pixels, fg, facts = render_clip_facts(
            self.seed, index, self.num_frames, self.img_size, self.max_shapes
        )
        return {
            "video": normalize(pixels),
            "label": torch.tensor(clip_label(facts, self.label, self.img_size), dtype=torch.long),
            "fg_tokens": pixel_mask_to_tokens(fg, self.patch_size, self.tubelet_size),
        }


def render_clip(
    seed: int, index: int, num_frames: int, img_size: int, max_shapes: int = 3
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Render one clip.

    Returns:
        pixels: float ``[3, T, H, W]`` in [0, 1]; fg: bool ``[T, H, W]``; label: direction class.
    """
    pixels, fg, facts = render_clip_facts(seed, index, num_frames, img_size, max_shapes)
    return pixels, fg, facts.direction


def _clip_generator(seed: int, index: int) -> torch.Generator:
    # A private generator per clip: the clip depends on (seed, index) only, never on global RNG.
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))


def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.meshgrid(coords, coords, indexing="ij")  # [H, W] each


def render_background(seed: int, index: int, num_frames: int, img_size: int) -> torch.Tensor:
    """The clip's static background alone, float ``[3, T, H, W]`` in [0, 1]: what copying the
    background from anywhere in the clip would predict (a reference level for reconstruction)."""
    yy, xx = _pixel_grid(img_size)
    background = _background(_clip_generator(seed, index), yy, xx, img_size).clamp(0, 1)
    return background.unsqueeze(1).expand(3, num_frames, img_size, img_size).clone()


def render_clip_facts(
    seed: int, index: int, num_frames: int, img_size: int, max_shapes: int = 3
) -> tuple[torch.Tensor, torch.Tensor, ClipFacts]:
    """Render one clip: pixels ``[3, T, H, W]`` in [0, 1], fg bool ``[T, H, W]``, and its facts."""
    gen = _clip_generator(seed, index)
    size, frames = img_size, num_frames
    yy, xx = _pixel_grid(size)

    video = _background(gen, yy, xx, size).unsqueeze(1).expand(3, frames, size, size).clone()
    fg = torch.zeros(frames, size, size, dtype=torch.bool)

    label = int(torch.randint(NUM_DIRECTIONS, (1,), generator=gen))
    angle = label * 2 * math.pi / NUM_DIRECTIONS
    # Image rows grow downward, so "up" (label 2) is a negative y velocity.
    unit = torch.tensor([-math.sin(angle), math.cos(angle)])  # (dy, dx)
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)

    num_shapes = int(torch.randint(1, max_shapes + 1, (1,), generator=gen))
    kinds, radii, speeds = [], [], []
    for _ in range(num_shapes):  # at most a few shapes: not a loop over batch or tokens
        radius = size * (0.09 + 0.07 * float(torch.rand(1, generator=gen)))
        span = max(frames - 1, 1)
        max_speed = max((size - 2 * radius - 2) / span, 0.0)
        speed = min(size / 64 * (0.8 + 1.2 * float(torch.rand(1, generator=gen))), max_speed)
        vel = unit * speed
        center0 = []
        for axis in range(2):
            travel = float(vel[axis]) * span
            lo, hi = radius - min(0.0, travel), size - radius - max(0.0, travel)
            center0.append(lo + (hi - lo) * float(torch.rand(1, generator=gen)))
        dy = yy - (center0[0] + vel[0] * t)  # [T, H, W]
        dx = xx - (center0[1] + vel[1] * t)
        kind_index = int(torch.randint(len(SHAPES), (1,), generator=gen))
        kind = SHAPES[kind_index]
        kinds.append(kind_index), radii.append(radius), speeds.append(speed)
        if kind == "square":
            inside = torch.maximum(dy.abs(), dx.abs()) <= radius
        elif kind == "disc":
            inside = dy**2 + dx**2 <= radius**2
        else:
            inside = dy.abs() + dx.abs() <= radius * 1.3
        video = torch.where(inside.unsqueeze(0), _shape_texture(gen, dy, dx, size), video)
        fg |= inside
    return video.clamp(0, 1), fg, ClipFacts(label, tuple(kinds), tuple(radii), tuple(speeds))


def _background(gen: torch.Generator, yy: torch.Tensor, xx: torch.Tensor, size: int) -> torch.Tensor:
    """Static smooth texture ``[3, H, W]`` in [0, 1]: a base colour plus a few low-frequency waves."""
    base = 0.25 + 0.5 * torch.rand(3, 1, 1, generator=gen)
    pattern = torch.zeros(3, size, size)
    for _ in range(3):
        freq = (1.0 + 3.0 * torch.rand(2, generator=gen)) * 2 * math.pi / size
        phase = 2 * math.pi * torch.rand(1, generator=gen)
        amp = 0.06 + 0.08 * torch.rand(3, 1, 1, generator=gen)
        pattern += amp * torch.sin(freq[0] * yy + freq[1] * xx + phase)
    return base + pattern


def _shape_texture(gen: torch.Generator, dy: torch.Tensor, dx: torch.Tensor, size: int) -> torch.Tensor:
    """Saturated colour with stripes that move with the shape: ``[3, T, H, W]``."""
    colour = torch.rand(3, generator=gen)
    colour = (colour - colour.min()) / (colour.max() - colour.min() + 1e-6)  # saturate
    theta = math.pi * float(torch.rand(1, generator=gen))
    freq = (6 + 6 * float(torch.rand(1, generator=gen))) * 2 * math.pi / size
    stripes = 0.7 + 0.3 * torch.sin(freq * (dx * math.cos(theta) + dy * math.sin(theta)))
    return colour.view(3, 1, 1, 1) * stripes.unsqueeze(0)


# Validation clips come from a different family than training clips.
VAL_SEED_OFFSET = 10_000


@register_data_source("synthetic")
def synthetic_source(
    split: str, geometry: ClipGeometry, seed: int, num_clips: int = 100_000, val_clips: int = 256, max_shapes: int = 3,
    label: str = "direction",
) -> SyntheticClips:
    """The built-in moving-shapes clips: ``num_clips`` training or ``val_clips`` held-out clips
    (held-out clips from another seed family), labelled with the ``label`` set."""
    return SyntheticClips(
        num_clips=int(num_clips if split == "train" else val_clips),
        num_frames=geometry.num_frames,
        img_size=geometry.img_size,
        patch_size=geometry.patch_size,
        tubelet_size=geometry.tubelet_size,
        seed=seed if split == "train" else seed + VAL_SEED_OFFSET,
        max_shapes=int(max_shapes),
        label=str(label),
    )
