"""Linear probe: logistic regression on frozen, mean-pooled encoder features.

The features are standardized with the training set's mean and standard deviation (what the
affine-free BatchNorm in front of MAE's linear-probe head does), then a linear classifier is fit
by full-batch L-BFGS with a small L2 penalty. The problem is convex and starts from zero, so the
result depends on the features only, not on a seed or a learning-rate schedule.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from adamae_rl.errors import InputFileError
from adamae_rl.evaluation.data import LabelledSplit, batches
from adamae_rl.evaluation.encoder import pooled_features
from adamae_rl.evaluation.metrics import topk_accuracy
from adamae_rl.models.videomae import VideoMAE


@dataclass
class ProbeSettings:
    """How the probe is fit.

    Args:
        l2: L2 penalty on the weights (``l2 / 2 * ||W||^2`` added to the mean cross-entropy).
        max_iter: L-BFGS iterations.
        batch_size: clips per encoder pass while extracting features.
        pool: ``mean`` over all tokens (VideoMAE) or ``time`` (per-slice means, concatenated);
            see :func:`~adamae_rl.evaluation.encoder.pooled_features`.
    """

    l2: float = 1e-3
    max_iter: int = 300
    batch_size: int = 32
    pool: str = "mean"


@torch.no_grad()
def extract_features(
    model: VideoMAE, split: LabelledSplit, batch_size: int, device: torch.device, desc: str = "features",
    progress: bool = True, num_workers: int = 0, pool: str = "mean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and labels of every clip in ``split``.

    Returns:
        feats: ``[M, D]`` (``[M, T' * D]`` for ``pool="time"``) float32 on CPU; labels: ``[M]`` int64.
    """
    model = model.to(device).eval()
    feats, labels = [], []
    bar = tqdm(total=len(split), desc=desc, unit="clip", disable=not progress, leave=False)
    for video, label in batches(split, batch_size, num_workers=num_workers):
        feats.append(pooled_features(model, video.to(device), pool).float().cpu())
        labels.append(label)
        bar.update(len(label))
    bar.close()
    return torch.cat(feats), torch.cat(labels)


class LinearProbe(nn.Module):
    """Standardize features with fixed statistics, then a linear layer: ``[M, D]`` -> ``[M, K]``."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.numel(), num_classes)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear((feats - self.mean) / self.std)


def fit_linear_probe(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, settings: ProbeSettings) -> LinearProbe:
    """Fit a :class:`LinearProbe` on ``feats`` ``[M, D]`` and ``labels`` ``[M]`` (full batch)."""
    if labels.max() >= num_classes or labels.min() < 0:
        raise InputFileError(f"labels span {int(labels.min())}..{int(labels.max())}, outside 0..{num_classes - 1}")
    feats = feats.double()  # float64: L-BFGS line searches stall on float32 round-off
    # A feature that never varies would divide by zero; it carries no information, so scale 1.
    std = feats.std(dim=0).clamp(min=1e-6)
    probe = LinearProbe(feats.mean(dim=0), std, num_classes).double()
    params = list(probe.linear.parameters())
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=settings.max_iter, history_size=20,
                            tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(probe(feats), labels) + 0.5 * settings.l2 * probe.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe.float()


def linear_probe(
    model: VideoMAE, train: LabelledSplit, val: LabelledSplit, num_classes: int, settings: ProbeSettings,
    device: torch.device, progress: bool = True, num_workers: int = 0,
) -> dict:
    """Fit a probe on ``train`` features and score it on ``val``.

    Returns:
        ``{"top1", "top5", "train_top1", "train_clips", "val_clips", "seconds", "settings"}``.
    """
    start = time.perf_counter()
    train_x, train_y = extract_features(model, train, settings.batch_size, device, "probe: train features", progress,
                                        num_workers, settings.pool)
    val_x, val_y = extract_features(model, val, settings.batch_size, device, "probe: val features", progress,
                                    num_workers, settings.pool)
    probe = fit_linear_probe(train_x, train_y, num_classes, settings)
    with torch.no_grad():
        scores = topk_accuracy(probe(val_x), val_y)
        train_top1 = topk_accuracy(probe(train_x), train_y, ks=(1,))["top1"]
    return {
        **scores, "train_top1": train_top1, "train_clips": len(train_y), "val_clips": len(val_y),
        "seconds": time.perf_counter() - start, "settings": asdict(settings),
    }
