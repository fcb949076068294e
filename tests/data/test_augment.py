"""Fine-tuning augmentation: crops, RandAugment, random erasing, Mixup/CutMix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adamae_rl.data.augment import RandAugment, _apply, mixup_cutmix, random_erasing, random_resized_crop_box, smoothed_one_hot


def test_random_resized_crops_fit_and_follow_their_area_share() -> None:
    rng = np.random.default_rng(0)
    shares = []
    for _ in range(500):
        box = random_resized_crop_box(120, 160, rng)
        assert 0 <= box.top and box.top + box.height <= 120 and 0 <= box.left and box.left + box.width <= 160
        shares.append(box.height * box.width / (120 * 160))
    assert min(shares) < 0.2 and max(shares) > 0.8  # the whole range (0.08, 1) is drawn


@pytest.mark.parametrize("op", RandAugment.OPS)
def test_each_operation_keeps_shape_and_range_and_treats_frames_alike(op: str) -> None:
    frame = 100 + torch.rand(1, 3, 24, 32) * 50  # low contrast, so that auto_contrast and equalize show
    clip = frame.expand(4, -1, -1, -1).clone()  # four identical frames
    out = _apply(op, clip, 0.7, np.random.default_rng(1))
    assert out.shape == clip.shape and bool(torch.isfinite(out).all())
    assert float(out.min()) >= -1e-3 and float(out.max()) <= 255 + 1e-3
    assert all(torch.allclose(out[0], out[t], atol=1e-4) for t in range(1, 4))
    if op not in ("brightness", "color", "contrast", "sharpness"):  # factors near 1 may change little
        assert not torch.allclose(out, clip, atol=1.0), f"{op} at magnitude 7 changed nothing"


def test_randaugment_is_a_function_of_its_generator() -> None:
    clip = torch.rand(4, 3, 24, 32) * 255
    augment = RandAugment(num_ops=4, magnitude=7, magnitude_std=0.5)
    a = augment(clip.clone(), np.random.default_rng(5))
    assert torch.equal(a, augment(clip.clone(), np.random.default_rng(5)))
    assert not torch.equal(a, augment(clip.clone(), np.random.default_rng(6)))
    with pytest.raises(ValueError, match="magnitude in"):
        RandAugment(magnitude=11)


def test_random_erasing_erases_per_frame() -> None:
    rng = np.random.default_rng(0)
    clip = torch.zeros(3, 6, 32, 32)
    assert torch.equal(random_erasing(clip.clone(), 0.0, rng), clip)
    erased = random_erasing(clip.clone(), 1.0, rng)
    assert all(bool((erased[:, t] != 0).any()) for t in range(6))
    assert float((erased != 0).float().mean()) < 0.5


@pytest.mark.parametrize("mixup, cutmix", [(0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_mixed_soft_targets_sum_to_one(mixup: float, cutmix: float) -> None:
    rng = np.random.default_rng(0)
    video, labels = torch.randn(6, 3, 4, 16, 16), torch.tensor([0, 1, 2, 3, 4, 5])
    for _ in range(20):
        mixed, target = mixup_cutmix(video, labels, 10, rng, mixup_alpha=mixup, cutmix_alpha=cutmix, smoothing=0.1)
        assert mixed.shape == video.shape and target.shape == (6, 10)
        assert torch.allclose(target.sum(1), torch.ones(6)) and bool((target >= 0).all())
        lam = float(target[0, 0] - 0.01) / 0.9 if labels[0] != labels[-1] else None  # share of clip 0's own label
        if cutmix and not mixup:  # the unchanged share of every frame is lam
            kept = (mixed[0] == video[0]).float().mean()
            assert float(kept) == pytest.approx(lam, abs=1e-6)


def test_no_mixing_gives_smoothed_labels_and_the_same_clips() -> None:
    video, labels = torch.randn(4, 3, 2, 8, 8), torch.tensor([1, 0, 2, 1])
    mixed, target = mixup_cutmix(video, labels, 3, np.random.default_rng(0), prob=0.0, smoothing=0.3)
    assert torch.equal(mixed, video)
    assert torch.allclose(target, smoothed_one_hot(labels, 3, 0.3)) and torch.allclose(target[0], torch.tensor([0.1, 0.8, 0.1]))
