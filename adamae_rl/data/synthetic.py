"""Built-in default data: moving shapes over a static textured background.

Each clip shows 1-3 textured shapes (square, disc, diamond) that all move in the same
direction at their own constant speed over a static background of a few sinusoidal waves
(``background=``, see :data:`BACKGROUNDS`). A clip is a
pure function of ``(seed, index)``: the same pair always renders the same pixels, on any machine,
so runs are reproducible and no files are needed.

Every item carries:

- ``video``: float ``[C=3, T, H, W]``, ImageNet-normalized;
- ``label``: int64 scalar, the class of the chosen label set (``label=``, see :data:`LABELS`); by
  default the motion direction class ``0..7`` = the angle ``label * 45°`` counter-clockwise from
  "moving right" (0 right, 2 up, 4 left, 6 down; image y grows downward);
- ``fg_tokens``: bool ``[N]``: the tubelet token ``(t h w)`` covers at least one pixel of a
  moving shape in at least one of its frames.

:func:`render_batch` renders many clips at once, bit-identical to rendering them one by one; the
DataLoader uses it through :meth:`SyntheticClips.__getitems__`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from adamae_rl.data.loader import SampleKey, split_key
from adamae_rl.data.sources import register_data_source
from adamae_rl.errors import ConfigError
from adamae_rl.geometry import ClipGeometry
from adamae_rl.data.transforms import normalize

NUM_DIRECTIONS = 8
SHAPES = ("square", "disc", "diamond")
# Shapes move at size/64 * (0.8 .. 2.0) px per frame; "fast" is the upper half of that range.
FAST_SPEED = 1.4

# Label sets a clip can carry (``label=`` of the data source). Appearance and motion together make
# the benchmark need an encoder that knows *what* moves and *where to*.
LABELS = ("direction", "shape", "count", "speed", "direction_shape")

# Background kinds: the spatial frequency of the background's three waves, in cycles per frame
# side along each axis, as (lowest, range): a uniform draw u gives lowest + range * u.
# - smooth (default): 0.25-1 cycle; an 8-pixel token of a 64-pixel frame spans at most about a
#   sixth of a period, so a background place hidden in every frame can be interpolated from its
#   neighbours.
# - fine: 1-4 cycles (periods down to ~11 pixels, under two tokens): at a 90% mask ratio a place
#   hidden in every frame cannot be interpolated, and the background dominates the reconstruction
#   error; the ablation benchmark's (docs/results/synthetic-benchmark.md), and what a stored run
#   without ``data.background`` is read as.
BACKGROUND_CYCLES: dict[str, tuple[float, float]] = {"smooth": (0.25, 0.75), "fine": (1.0, 3.0)}
BACKGROUNDS = tuple(BACKGROUND_CYCLES)
# The one default of data.background (the schema and every function here take it): on the smooth
# background the MAE's error is left on the moving shapes, which is what the sampler learns from.
DEFAULT_BACKGROUND = "smooth"


def check_background(background: str) -> str:
    """``background`` if it is a kind in :data:`BACKGROUNDS`, else a ValueError naming them."""
    if background not in BACKGROUND_CYCLES:
        raise ConfigError(f"background must be one of {', '.join(BACKGROUNDS)}; got {background!r}")
    return background


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
        raise ConfigError(f"label must be one of {', '.join(LABELS)}; got {label!r}")
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
    raise ConfigError(f"label must be one of {', '.join(LABELS)}; got {label!r}")


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
        background: the background's kind (see :data:`BACKGROUNDS`).
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
        background: str = DEFAULT_BACKGROUND,
    ) -> None:
        ClipGeometry(num_frames, img_size, patch_size, tubelet_size)  # refuses sizes that do not divide
        if num_clips < 1 or max_shapes < 1:
            raise ConfigError(f"num_clips={num_clips} and max_shapes={max_shapes} must be >= 1")
        self.num_classes = num_label_classes(label, max_shapes)  # also refuses an unknown label set
        self.label = label
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.img_size = img_size
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.seed = seed
        self.max_shapes = max_shapes
        self.background = check_background(background)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, key: int | SampleKey) -> dict[str, torch.Tensor]:
        index = self._index(key)
        pixels, fg, facts = render_clip_facts(
            self.seed, index, self.num_frames, self.img_size, self.max_shapes, self.background
        )
        return {
            "video": normalize(pixels),
            "label": torch.tensor(clip_label(facts, self.label, self.img_size), dtype=torch.long),
            "fg_tokens": pixel_mask_to_tokens(fg, self.patch_size, self.tubelet_size),
        }

    # The __getitem__ that __getitems__ reproduces; an override (subclass or patch) replaces it.
    _batched_getitem = __getitem__

    def __getitems__(self, keys: list[int | SampleKey]) -> list[dict[str, torch.Tensor]]:
        """The items of several keys, rendered as one batch (the DataLoader calls this with each
        batch's keys): the same values as ``[self[key] for key in keys]``."""
        if type(self).__getitem__ is not SyntheticClips._batched_getitem:
            # The batch would bypass the overriding __getitem__, so ask it item by item.
            return [self[key] for key in keys]
        indices = [self._index(key) for key in keys]
        if not indices:
            return []
        videos, fg, facts = _render_clips(
            self.seed, indices, self.num_frames, self.img_size, self.max_shapes, self.background, pixel_map=normalize
        )
        tokens = pixel_mask_to_tokens(fg, self.patch_size, self.tubelet_size)  # [B, N]
        return [
            {
                "video": videos[i],
                "label": torch.tensor(clip_label(facts[i], self.label, self.img_size), dtype=torch.long),
                "fg_tokens": tokens[i],
            }
            for i in range(len(indices))
        ]

    def _index(self, key: int | SampleKey) -> int:
        index, _ = split_key(key)  # synthetic clips need no per-draw randomness
        if not 0 <= index < self.num_clips:
            raise IndexError(f"index {index} out of range for {self.num_clips} clips")
        return index


def render_clip(
    seed: int, index: int, num_frames: int, img_size: int, max_shapes: int = 3, background: str = DEFAULT_BACKGROUND
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Render one clip.

    Returns:
        pixels: float ``[3, T, H, W]`` in [0, 1]; fg: bool ``[T, H, W]``; label: direction class.
    """
    pixels, fg, facts = render_clip_facts(seed, index, num_frames, img_size, max_shapes, background)
    return pixels, fg, facts.direction


def _clip_generator(seed: int, index: int) -> torch.Generator:
    # A private generator per clip: the clip depends on (seed, index) only, never on global RNG.
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))


def _pixel_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    coords = _pixel_centres(size)
    return torch.meshgrid(coords, coords, indexing="ij")  # [H, W] each


def _pixel_centres(size: int) -> torch.Tensor:
    """Pixel centre coordinates along one axis: float ``[size]``."""
    return torch.arange(size, dtype=torch.float32) + 0.5


# --- Random draws -------------------------------------------------------------------------------
# A clip's uniform draws, taken from its generator in one fixed order (the order is what makes a
# clip a function of (seed, index), so it must never change). Rendering consumes no randomness, so
# one clip and a batch of clips render from the very same draws.


@dataclass(frozen=True)
class _BackgroundDraws:
    """Uniform draws of a background: base ``[..., 3, 1, 1]``; per wave frequency
    ``[..., 3, 2]``, phase ``[..., 3, 1]`` and amplitude ``[..., 3, 3, 1, 1]`` (wave dim before
    the draw's own dims)."""

    base: torch.Tensor
    freq: torch.Tensor
    phase: torch.Tensor
    amp: torch.Tensor


@dataclass(frozen=True)
class _ShapeDraws:
    """Uniform draws of one shape; ``kind`` indexes SHAPES and ``colour`` is ``[3]``."""

    radius: float
    speed: float
    start: tuple[float, float]  # (y, x)
    kind: int
    colour: torch.Tensor
    theta: float
    freq: float


@dataclass(frozen=True)
class _ClipDraws:
    background: _BackgroundDraws
    direction: int
    shapes: tuple[_ShapeDraws, ...]


def _uniform(gen: torch.Generator) -> float:
    return float(torch.rand(1, generator=gen))


def _draw_background(gen: torch.Generator) -> _BackgroundDraws:
    base = torch.rand(3, 1, 1, generator=gen)
    waves = [
        (torch.rand(2, generator=gen), torch.rand(1, generator=gen), torch.rand(3, 1, 1, generator=gen))
        for _ in range(3)
    ]
    freq, phase, amp = (torch.stack(parts) for parts in zip(*waves))
    return _BackgroundDraws(base, freq, phase, amp)


def _draw_shape(gen: torch.Generator) -> _ShapeDraws:
    radius, speed = _uniform(gen), _uniform(gen)
    start = (_uniform(gen), _uniform(gen))
    kind = int(torch.randint(len(SHAPES), (1,), generator=gen))
    colour = torch.rand(3, generator=gen)
    theta, freq = _uniform(gen), _uniform(gen)
    return _ShapeDraws(radius, speed, start, kind, colour, theta, freq)


def _draw_clip(gen: torch.Generator, max_shapes: int) -> _ClipDraws:
    background = _draw_background(gen)
    direction = int(torch.randint(NUM_DIRECTIONS, (1,), generator=gen))
    num_shapes = int(torch.randint(1, max_shapes + 1, (1,), generator=gen))
    shapes = tuple(_draw_shape(gen) for _ in range(num_shapes))
    return _ClipDraws(background, direction, shapes)


# --- From draws to geometry and appearance ------------------------------------------------------
# Shared by the one-clip and the batch renderer, so both compute every value with the same
# operations in the same order and dtype: elementwise float ops then give the same bits whatever
# the tensor shapes.


def _unit_velocity(direction: int) -> torch.Tensor:
    """Unit motion vector ``(dy, dx)`` of a direction class: float ``[2]``."""
    angle = direction * 2 * math.pi / NUM_DIRECTIONS
    # Image rows grow downward, so "up" (label 2) is a negative y velocity.
    return torch.tensor([-math.sin(angle), math.cos(angle)])


def _radius_speed(shape: _ShapeDraws, frames: int, size: int) -> tuple[float, float]:
    """Radius and speed (pixels, per frame); the speed is capped so the shape fits its path."""
    radius = size * (0.09 + 0.07 * shape.radius)
    span = max(frames - 1, 1)
    max_speed = max((size - 2 * radius - 2) / span, 0.0)
    speed = min(size / 64 * (0.8 + 1.2 * shape.speed), max_speed)
    return radius, speed


def _start_centre(
    shape: _ShapeDraws, radius: float, velocity: Sequence[float], frames: int, size: int
) -> tuple[float, float]:
    """Centre ``(y, x)`` at frame 0, drawn among those that keep the shape in frame all clip long."""
    span = max(frames - 1, 1)
    centre = []
    for axis in range(2):
        travel = velocity[axis] * span
        lo, hi = radius - min(0.0, travel), size - radius - max(0.0, travel)
        centre.append(lo + (hi - lo) * shape.start[axis])
    return centre[0], centre[1]


def _inside_threshold(kind: int, radius: float) -> float:
    """The bound :func:`_inside` compares against, computed in double precision like the radius."""
    if SHAPES[kind] == "square":
        return radius
    if SHAPES[kind] == "disc":
        return radius**2
    return radius * 1.3


def _half_width(kind: int, radius: float) -> float:
    """Largest ``|dy|`` (and ``|dx|``) of a pixel inside the shape."""
    return radius * 1.3 if SHAPES[kind] == "diamond" else radius


def _inside(kind: int, dy: torch.Tensor, dx: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Pixels covered by a shape, from offsets to its centre (any broadcastable shapes): bool."""
    if SHAPES[kind] == "square":
        return torch.maximum(dy.abs(), dx.abs()) <= threshold
    if SHAPES[kind] == "disc":
        return dy**2 + dx**2 <= threshold
    return dy.abs() + dx.abs() <= threshold


def _background(
    draws: _BackgroundDraws, yy: torch.Tensor, xx: torch.Tensor, size: int, kind: str
) -> torch.Tensor:
    """Static texture ``[..., 3, H, W]`` (not clamped): a base colour plus a few waves whose
    frequencies the ``kind`` sets (:data:`BACKGROUND_CYCLES`). ``yy``, ``xx``: pixel centres
    broadcastable to ``[H, W]``."""
    lowest, spread = BACKGROUND_CYCLES[check_background(kind)]
    lead = draws.base.shape[:-3]
    base = 0.25 + 0.5 * draws.base
    pattern = torch.zeros(*lead, 3, size, size)
    for wave in range(draws.freq.shape[-2]):
        freq = (lowest + spread * draws.freq[..., wave, :]) * 2 * math.pi / size  # [..., 2]
        phase = 2 * math.pi * draws.phase[..., wave, :].unsqueeze(-1)  # [..., 1, 1]
        amp = 0.06 + 0.08 * draws.amp[..., wave, :, :, :]  # [..., 3, 1, 1]
        angle = freq[..., 0, None, None] * yy + freq[..., 1, None, None] * xx + phase  # [..., H, W]
        pattern += amp * torch.sin(angle).unsqueeze(-3)
    return base + pattern


def _saturated(colour: torch.Tensor) -> torch.Tensor:
    """Stretch colours ``[..., 3]`` to span [0, 1] (saturate)."""
    low, high = colour.amin(-1, keepdim=True), colour.amax(-1, keepdim=True)
    return (colour - low) / (high - low + 1e-6)


def _stripe_angle_freq(shape: _ShapeDraws, size: int) -> tuple[float, float]:
    """Stripe direction (radians) and spatial frequency (radians per pixel)."""
    return math.pi * shape.theta, (6 + 6 * shape.freq) * 2 * math.pi / size


def _stripes(x_term: torch.Tensor, y_term: torch.Tensor, freq: float | torch.Tensor) -> torch.Tensor:
    """Stripe brightness in [0.4, 1] from the offsets to the shape's centre projected on the
    stripe normal: ``x_term = dx * cos(theta)``, ``y_term = dy * sin(theta)``."""
    return 0.7 + 0.3 * torch.sin(freq * (x_term + y_term))


# --- One clip (the reference) -------------------------------------------------------------------


def render_background(seed: int, index: int, num_frames: int, img_size: int, background: str = DEFAULT_BACKGROUND) -> torch.Tensor:
    """The clip's static background alone, float ``[3, T, H, W]`` in [0, 1]: what copying the
    background from anywhere in the clip would predict (a reference level for reconstruction)."""
    yy, xx = _pixel_grid(img_size)
    draws = _draw_background(_clip_generator(seed, index))
    pixels = _background(draws, yy, xx, img_size, background).clamp(0, 1)
    return pixels.unsqueeze(1).expand(3, num_frames, img_size, img_size).clone()


def render_clip_facts(
    seed: int, index: int, num_frames: int, img_size: int, max_shapes: int = 3, background: str = DEFAULT_BACKGROUND
) -> tuple[torch.Tensor, torch.Tensor, ClipFacts]:
    """Render one clip: pixels ``[3, T, H, W]`` in [0, 1], fg bool ``[T, H, W]``, and its facts."""
    draws = _draw_clip(_clip_generator(seed, index), max_shapes)
    size, frames = img_size, num_frames
    yy, xx = _pixel_grid(size)

    video = _background(draws.background, yy, xx, size, background).unsqueeze(1).expand(3, frames, size, size).clone()
    fg = torch.zeros(frames, size, size, dtype=torch.bool)
    unit = _unit_velocity(draws.direction)
    t = torch.arange(frames, dtype=torch.float32).view(frames, 1, 1)

    radii, speeds = [], []
    for shape in draws.shapes:  # at most a few shapes: not a loop over batch or tokens
        radius, speed = _radius_speed(shape, frames, size)
        vel = unit * speed
        centre = _start_centre(shape, radius, vel.tolist(), frames, size)
        dy = yy - (centre[0] + vel[0] * t)  # [T, H, W]
        dx = xx - (centre[1] + vel[1] * t)
        inside = _inside(shape.kind, dy, dx, _inside_threshold(shape.kind, radius))
        video = torch.where(inside.unsqueeze(0), _shape_texture(shape, dy, dx, size), video)
        fg |= inside
        radii.append(radius), speeds.append(speed)
    kinds = tuple(shape.kind for shape in draws.shapes)
    return video.clamp(0, 1), fg, ClipFacts(draws.direction, kinds, tuple(radii), tuple(speeds))


def _shape_texture(shape: _ShapeDraws, dy: torch.Tensor, dx: torch.Tensor, size: int) -> torch.Tensor:
    """Saturated colour with stripes that move with the shape: ``[3, T, H, W]``."""
    theta, freq = _stripe_angle_freq(shape, size)
    stripes = _stripes(dx * math.cos(theta), dy * math.sin(theta), freq)
    return _saturated(shape.colour).view(3, 1, 1, 1) * stripes.unsqueeze(0)


# --- A batch of clips ---------------------------------------------------------------------------
# The same pixels as render_clip_facts, clip by clip, from a few batched ops instead of dozens of
# small ones per clip. Besides batching, the work shrinks to where the shapes are: each shape is
# tested only within a small window around it, its stripes are computed only at the pixels it
# covers, and those pixels are pasted over the background slot by slot in drawing order, so that,
# as in the per-clip compositing, a later shape covers an earlier one.

PixelMap = Callable[[torch.Tensor, int], torch.Tensor]  # (pixels, channel_dim) -> pixels


@dataclass(frozen=True)
class _BatchShapes:
    """All P shapes of a batch, ordered by slot (drawing order within the clip), then by clip, so
    that each slot's shapes are consecutive.

    kinds: P indices into SHAPES; clip, slot: long ``[P]``; threshold, half_width, freq: float
    ``[P]`` (see :func:`_inside_threshold`, :func:`_half_width`, :func:`_stripe_angle_freq`); colour:
    float ``[P, 3]``, saturated; centre: float ``[P, 2, T]``, ``(y, x)`` per frame; dy, dx: float
    ``[P, T, S]``, pixel centre minus shape centre along y for each row and along x for each
    column; y_term, x_term: float ``[P, T, S]``, ``dy * sin(theta)`` and ``dx * cos(theta)``.
    """

    kinds: list[int]
    clip: torch.Tensor
    slot: torch.Tensor
    threshold: torch.Tensor
    half_width: torch.Tensor
    freq: torch.Tensor
    colour: torch.Tensor
    centre: torch.Tensor
    dy: torch.Tensor
    dx: torch.Tensor
    y_term: torch.Tensor
    x_term: torch.Tensor


@dataclass(frozen=True)
class _Covered:
    """The E (shape, pixel) pairs where a shape covers a pixel, ordered by shape: ``[E]`` each.
    shape: long, index into the batch's shapes; pixel: long, flat index into ``[B, T, H, W]``;
    y_term, x_term: float, the shape's stripe inputs there."""

    shape: torch.Tensor
    pixel: torch.Tensor
    y_term: torch.Tensor
    x_term: torch.Tensor


def render_batch(
    seed: int, indices: Sequence[int], num_frames: int, img_size: int, max_shapes: int = 3, background: str = DEFAULT_BACKGROUND
) -> tuple[torch.Tensor, torch.Tensor, list[ClipFacts]]:
    """Render several clips at once, bit-identical to :func:`render_clip_facts` clip by clip.

    Returns:
        pixels: float ``[B, 3, T, H, W]`` in [0, 1]; fg: bool ``[B, T, H, W]``; the clips' facts.
    """
    return _render_clips(seed, indices, num_frames, img_size, max_shapes, background)


def _render_clips(
    seed: int, indices: Sequence[int], frames: int, size: int, max_shapes: int, background: str,
    pixel_map: PixelMap | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[ClipFacts]]:
    """:func:`render_batch`, with ``pixel_map`` (e.g. normalize) applied to every final pixel.

    ``pixel_map(values, channel_dim)`` must act on each value alone, given its channel: it maps
    the backgrounds ``[B, 3, H, W]`` and the shapes' colours ``[E, 3]`` before they are composed.
    """
    draws = [_draw_clip(_clip_generator(seed, int(index)), max_shapes) for index in indices]
    facts = [_clip_facts(draw, frames, size) for draw in draws]
    if not draws:
        return torch.zeros(0, 3, frames, size, size), torch.zeros(0, frames, size, size, dtype=torch.bool), facts
    shapes = _layout_shapes(draws, frames, size)
    covered = _covered_pixels(shapes, frames, size)
    colours = _shape_colours(shapes, covered).clamp(0, 1)  # [E, 3]
    centres = _pixel_centres(size)
    canvas = _background(_stack_backgrounds(draws), centres.view(size, 1), centres, size, background).clamp(0, 1)
    if pixel_map is not None:  # on clamped values, as when mapping the finished clips
        canvas, colours = pixel_map(canvas, 1), pixel_map(colours, 1)
    pixels = canvas.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()  # [B, 3, T, H, W]
    _paste(pixels, shapes, covered, colours)
    fg = torch.zeros(len(draws), frames, size, size, dtype=torch.bool)
    fg.view(-1).index_fill_(0, covered.pixel, True)
    return pixels, fg, facts


def _clip_facts(draws: _ClipDraws, frames: int, size: int) -> ClipFacts:
    """What a clip shows, as :func:`render_clip_facts` reports it."""
    radius_speed = [_radius_speed(shape, frames, size) for shape in draws.shapes]
    return ClipFacts(
        direction=draws.direction,
        kinds=tuple(shape.kind for shape in draws.shapes),
        radii=tuple(radius for radius, _ in radius_speed),
        speeds=tuple(speed for _, speed in radius_speed),
    )


def _stack_backgrounds(draws: Sequence[_ClipDraws]) -> _BackgroundDraws:
    """The clips' background draws with a leading batch dim ``B``."""
    backgrounds = [draw.background for draw in draws]
    return _BackgroundDraws(
        base=torch.stack([b.base for b in backgrounds]),
        freq=torch.stack([b.freq for b in backgrounds]),
        phase=torch.stack([b.phase for b in backgrounds]),
        amp=torch.stack([b.amp for b in backgrounds]),
    )


def _layout_shapes(draws: Sequence[_ClipDraws], frames: int, size: int) -> _BatchShapes:
    """Geometry and appearance of every shape of the batch (see :class:`_BatchShapes`)."""
    slots = max(len(draw.shapes) for draw in draws)
    order = [(clip, slot) for slot in range(slots) for clip, draw in enumerate(draws) if slot < len(draw.shapes)]
    shapes = [draws[clip].shapes[slot] for clip, slot in order]
    radius_speed = [_radius_speed(shape, frames, size) for shape in shapes]
    units = torch.stack([_unit_velocity(draws[clip].direction) for clip, _ in order])  # [P, 2]
    speeds = torch.tensor([speed for _, speed in radius_speed], dtype=torch.float32)
    velocity = units * speeds.unsqueeze(1)  # unit * speed as in the per-clip renderer: [P, 2]
    start = torch.tensor(
        [
            _start_centre(shape, radius, vel, frames, size)
            for shape, (radius, _), vel in zip(shapes, radius_speed, velocity.tolist())
        ],
        dtype=torch.float32,
    )  # [P, 2]
    centre = start.unsqueeze(2) + velocity.unsqueeze(2) * torch.arange(frames, dtype=torch.float32)  # [P, 2, T]
    offsets = _pixel_centres(size) - centre.unsqueeze(3)  # [P, 2, T, S]
    dy, dx = offsets[:, 0], offsets[:, 1]
    theta, freq = zip(*(_stripe_angle_freq(shape, size) for shape in shapes))
    cos = torch.tensor([math.cos(angle) for angle in theta], dtype=torch.float32).view(-1, 1, 1)
    sin = torch.tensor([math.sin(angle) for angle in theta], dtype=torch.float32).view(-1, 1, 1)
    radii = [radius for radius, _ in radius_speed]
    return _BatchShapes(
        kinds=[shape.kind for shape in shapes],
        clip=torch.tensor([clip for clip, _ in order]),
        slot=torch.tensor([slot for _, slot in order]),
        threshold=torch.tensor(
            [_inside_threshold(shape.kind, radius) for shape, radius in zip(shapes, radii)], dtype=torch.float32
        ),
        half_width=torch.tensor([_half_width(shape.kind, radius) for shape, radius in zip(shapes, radii)]),
        freq=torch.tensor(freq, dtype=torch.float32),
        colour=_saturated(torch.stack([shape.colour for shape in shapes])),
        centre=centre,
        dy=dy,
        dx=dx,
        y_term=dy * sin,
        x_term=dx * cos,
    )


def _windows(shapes: _BatchShapes, size: int) -> tuple[int, torch.Tensor]:
    """Square windows that hold each shape in each frame: their side W and their top-left
    corners ``(y, x)``, long ``[P, 2, T]``."""
    # One pixel of slack on each side: the float32 offsets and thresholds differ from the exact
    # geometry by far less than a pixel, so no covered pixel falls outside its window.
    reach = shapes.half_width + 1.0  # [P]
    side = min(size, math.ceil(2 * float(reach.max())) + 2)
    corner = torch.floor(shapes.centre - 0.5 - reach.view(-1, 1, 1)).long().clamp(0, size - side)
    return side, corner


def _covered_pixels(shapes: _BatchShapes, frames: int, size: int) -> _Covered:
    """Where each shape covers a pixel, tested within its windows."""
    side, corner = _windows(shapes, size)
    within = corner.unsqueeze(3) + torch.arange(side)  # pixel rows and columns of the windows: [P, 2, T, W]
    dy, dx = shapes.dy.gather(2, within[:, 0]), shapes.dx.gather(2, within[:, 1])  # [P, T, W]
    inside = torch.empty(len(shapes.kinds), frames, side, side, dtype=torch.bool)
    for kind in sorted(set(shapes.kinds)):  # one batched coverage test per shape kind
        members = torch.tensor([p for p, k in enumerate(shapes.kinds) if k == kind])
        threshold = shapes.threshold[members].view(-1, 1, 1, 1)
        inside[members] = _inside(kind, dy[members].unsqueeze(3), dx[members].unsqueeze(2), threshold)  # [n, T, W, W]
    shape, t, i, j = inside.nonzero().unbind(1)  # ordered by shape
    window = shape * frames + t  # index of the (shape, frame) window
    window_row = window * side  # its first entry in the [P * T * W] tables below
    # Flat index of the window's top-left pixel in [B, T, H, W], per (shape, frame): [P * T]
    origin = ((shapes.clip.unsqueeze(1) * frames + torch.arange(frames)) * size + corner[:, 0]) * size + corner[:, 1]
    # Gathers from flat tables with index_select: much faster than multi-dim advanced indexing.
    y_term = shapes.y_term.gather(2, within[:, 0]).view(-1)  # [P * T * W]
    x_term = shapes.x_term.gather(2, within[:, 1]).view(-1)
    return _Covered(
        shape=shape,
        pixel=origin.view(-1).index_select(0, window) + i * size + j,
        y_term=y_term.index_select(0, window_row + i),
        x_term=x_term.index_select(0, window_row + j),
    )


def _shape_colours(shapes: _BatchShapes, covered: _Covered) -> torch.Tensor:
    """Colour of each shape at each pixel it covers: float ``[E, 3]``."""
    stripes = _stripes(covered.x_term, covered.y_term, shapes.freq.index_select(0, covered.shape))  # [E]
    return shapes.colour.index_select(0, covered.shape) * stripes.unsqueeze(1)


def _paste(pixels: torch.Tensor, shapes: _BatchShapes, covered: _Covered, colours: torch.Tensor) -> None:
    """Write each shape's ``colours [E, 3]`` over ``pixels [B, 3, T, H, W]``, in place."""
    per_clip = pixels[0, 0].numel()  # T * H * W
    # Index b * THW + q into [B, T, H, W] is (3b + c) * THW + q = index + (2b + c) * THW here.
    clip = shapes.clip.index_select(0, covered.shape)
    index = (covered.pixel + 2 * per_clip * clip).unsqueeze(1) + per_clip * torch.arange(3)  # [E, 3]
    # One scatter per slot, in drawing order: a later shape overwrites an earlier one, and within
    # a slot no two shapes share a clip, so no pixel is written twice in one scatter.
    slot_starts = torch.searchsorted(shapes.slot, torch.arange(int(shapes.slot.max()) + 2))  # shape ranges
    bounds = torch.searchsorted(covered.shape, slot_starts).tolist()  # their (shape, pixel) ranges
    flat = pixels.view(-1)
    for lo, hi in itertools.pairwise(bounds):
        flat.scatter_(0, index[lo:hi].reshape(-1), colours[lo:hi].reshape(-1))


# Validation clips come from a different family than training clips.
VAL_SEED_OFFSET = 10_000


@register_data_source("synthetic")
def synthetic_source(
    split: str, geometry: ClipGeometry, seed: int, num_clips: int = 100_000, val_clips: int = 256, max_shapes: int = 3,
    label: str = "direction", background: str = DEFAULT_BACKGROUND,
) -> SyntheticClips:
    """The built-in moving-shapes clips: ``num_clips`` training or ``val_clips`` held-out clips
    (held-out clips from another seed family), labelled with the ``label`` set, over a
    ``background`` of that kind."""
    return SyntheticClips(
        num_clips=int(num_clips if split == "train" else val_clips),
        num_frames=geometry.num_frames,
        img_size=geometry.img_size,
        patch_size=geometry.patch_size,
        tubelet_size=geometry.tubelet_size,
        seed=seed if split == "train" else seed + VAL_SEED_OFFSET,
        max_shapes=int(max_shapes),
        label=str(label),
        background=str(background),
    )
