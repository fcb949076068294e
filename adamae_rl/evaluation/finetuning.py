"""Full fine-tuning with layer-wise learning-rate decay, as VideoMAE.

Layer ids follow VideoMAE's ``get_layer_id_for_vit``: the patch embedding (and position table) is
layer 0, encoder block ``i`` is layer ``i + 1``, everything after the blocks (final norms, head) is
layer ``depth + 1``. A parameter of layer ``l`` trains at ``lr * decay ** (depth + 1 - l)``: the
head at the full rate, the last block at ``decay``, the first at ``decay ** depth`` and the patch
embedding at ``decay ** (depth + 1)``, so early layers, which hold the most general features, move
least.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset, Subset, default_collate
from tqdm.auto import tqdm

from adamae_rl.data.augment import RandAugment, mixup_cutmix, random_erasing, random_resized_crop_box
from adamae_rl.data.loader import ResumableSampler
from adamae_rl.data.transforms import denormalize, normalize
from adamae_rl.data.video import VideoClips
from adamae_rl.data.views import MultiViewClips
from adamae_rl.errors import ConfigError, InputFileError

from adamae_rl.data.views import ViewSpec
from adamae_rl.evaluation.data import LabelledSplit
from adamae_rl.evaluation.encoder import VideoClassifier
from adamae_rl.evaluation.metrics import topk_accuracy
from adamae_rl.evaluation.testing import VIEW_SCORES, SingleView, multi_view_scores
from adamae_rl.utils import checkpoint as ckpt_io
from adamae_rl.utils.distributed import Process, all_reduce_mean, collective_device
from adamae_rl.utils.optim import decays, warmup_cosine_factor

log = logging.getLogger("adamae_rl.evaluation")


@dataclass
class FinetuneSettings:
    """Fine-tuning budget, optimizer and augmentation (VideoMAE's recipe; see :data:`RECIPES`).

    Args:
        steps: optimizer steps; or ``epochs`` of the training clips (one of the two).
        batch_size: clips per process per step.
        lr: peak learning rate of the head (the other layers get ``lr * layer_decay ** k``); or
            ``blr``: the peak as a base rate, ``lr = blr * global batch / 256`` (VideoMAE's rule).
        layer_decay: per-layer learning-rate decay.
        weight_decay: AdamW weight decay on weight matrices. betas: AdamW's betas.
        warmup_steps / warmup_epochs: linear warmup, then cosine decay to ``min_lr``.
        label_smoothing: cross-entropy label smoothing (VideoMAE: 0.1); with Mixup/CutMix it
            smooths the mixed targets.
        drop_path: the largest stochastic-depth rate, rising linearly over the blocks (VideoMAE: 0.1).
        mixup, cutmix: Beta parameters (0 = off); ``mixup_prob`` the share of batches mixed,
            ``mixup_switch_prob`` the share of those that use CutMix when both are on.
        randaug_ops, randaug_magnitude, randaug_std: RandAugment (``rand-m7-n4-mstd0.5``; 0 ops = off).
        reprob: random-erasing probability per frame.
        crop: ``resized`` (random-resized crop of each training clip, scale 0.08-1) or ``none``.
        flip: random horizontal flips (off for SSv2, whose labels name directions).
        ema_decay: keep an exponential moving average of the weights and score it (None = off).
        test_views: ``TxS`` views per validation video (lists; synthetic clips have one view).
        view_scores: ``softmax`` (VideoMAE) or ``logits`` (AdaMAE's code): what the views average.
        seed: head initialisation, clip order and augmentation draws.
    """

    steps: int | None = 200
    epochs: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    blr: float | None = None
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int | None = 20
    warmup_epochs: float | None = None
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    drop_path: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    randaug_ops: int = 0
    randaug_magnitude: float = 7.0
    randaug_std: float = 0.5
    reprob: float = 0.0
    crop: str = "none"
    flip: bool = False
    ema_decay: float | None = None
    test_views: str = "1x1"
    view_scores: str = "softmax"
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(f"give the fine-tuning length as steps or epochs, not both or neither (steps={self.steps}, epochs={self.epochs})")
        if self.warmup_steps is not None and self.warmup_epochs is not None:
            raise ConfigError("give the warmup as warmup_steps or warmup_epochs, not both")
        if self.crop not in ("none", "resized"):
            raise ConfigError(f"crop must be 'none' or 'resized', got {self.crop!r}")
        ViewSpec.parse(self.test_views)  # refuses 0x3 and the like, naming the text
        if self.view_scores not in VIEW_SCORES:
            raise ConfigError(f"view_scores must be one of {', '.join(VIEW_SCORES)}, got {self.view_scores!r}")

    @property
    def mixing(self) -> bool:
        return self.mixup_prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def peak_lr(self, global_batch: int) -> float:
        return self.blr * global_batch / 256 if self.blr is not None else self.lr

    def schedule(self, steps_per_epoch: int) -> tuple[int, int]:
        """(total steps, warmup steps) for ``steps_per_epoch``."""
        total = self.steps if self.steps is not None else max(round(self.epochs * steps_per_epoch), 1)
        warmup = self.warmup_steps if self.warmup_epochs is None else round(self.warmup_epochs * steps_per_epoch)
        return total, min(int(warmup or 0), total)


# VideoMAE's fine-tuning recipes for ViT-B (its SSv2 and Kinetics-400 scripts and
# run_class_finetuning.py's defaults; docs/finetuning.md has the table), and that recipe at a CPU
# budget for the synthetic benchmark.
_VIDEOMAE = dict(
    steps=None, layer_decay=0.75, weight_decay=0.05, betas=(0.9, 0.999), warmup_steps=None, warmup_epochs=5,
    min_lr=1e-6, label_smoothing=0.1, drop_path=0.1, mixup=0.8, cutmix=1.0, randaug_ops=4, randaug_magnitude=7,
    randaug_std=0.5, reprob=0.25, crop="resized", batch_size=8,
)
RECIPES: dict[str, FinetuneSettings] = {
    "quick": FinetuneSettings(),
    "ssv2_vit_b": FinetuneSettings(**_VIDEOMAE, epochs=50, blr=5e-4, flip=False, test_views="2x3"),
    "k400_vit_b": FinetuneSettings(**_VIDEOMAE, epochs=100, blr=1e-3, flip=True, test_views="5x3"),
    # blr 0.016 = lr 1e-3 at batch 16, the quick default; blr 1e-3 there is lr 6.25e-5, which left the training
    # loss at ln 8 through 256 steps (measured on the synthetic benchmark).
    "cpu": FinetuneSettings(**{**_VIDEOMAE, "warmup_epochs": 1, "batch_size": 16}, epochs=4, blr=0.016, flip=False),
}


def layer_id(name: str, depth: int) -> int:
    """VideoMAE's layer id of a classifier parameter (see the module docstring)."""
    if name.startswith(("patch_embed", "pos_embed")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def layer_decay_param_groups(model: VideoClassifier, weight_decay: float, layer_decay: float) -> list[dict]:
    """AdamW parameter groups, one per (layer, decay/no-decay), each with its ``lr_scale``.

    Returns:
        groups with keys ``params``, ``weight_decay``, ``lr_scale``, ``layer_id``, ``names``.
    """
    depth = model.depth
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer = layer_id(name, depth)
        decay = decays(name, param)
        group = groups.setdefault((layer, decay), {
            "params": [], "names": [], "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": layer_decay ** (depth + 1 - layer), "layer_id": layer,
        })
        group["params"].append(param)
        group["names"].append(name)
    return [groups[key] for key in sorted(groups)]


def lr_factor(step: int, total: int, warmup: int, peak: float, min_lr: float) -> float:
    """Multiplier of the peak rate at ``step``: linear warmup, then cosine to ``min_lr / peak``."""
    return warmup_cosine_factor(step, warmup, total, min_lr / peak if peak > 0 else 0.0)


class AugmentedClips(Dataset):
    """The training clips of a split with the recipe's per-clip augmentation.

    Keys are ``(position in the split, draw_seed)``; the draw seed fixes every random choice
    (crop, flip, RandAugment, erasing), so the order of workers or processes changes nothing.
    Item: ``video`` ``[C, T, H, W]`` (normalized), ``label``.
    """

    def __init__(self, split: LabelledSplit, settings: FinetuneSettings) -> None:
        self.split, self.settings = split, settings
        self.randaug = RandAugment(settings.randaug_ops, settings.randaug_magnitude, settings.randaug_std) if settings.randaug_ops else None

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        position, draw = int(key[0]), int(key[1])
        item = self.split.dataset[(self.split.indices[position], draw)]
        video, label = item["video"], item["label"]
        if video.dim() == 5:  # repeated sampling: the first clip
            video, label = video[0], label.reshape(-1)[0]
        rng = np.random.default_rng([self.settings.seed, draw, 0xA06])
        return {"video": self.augment(video, rng), "label": torch.as_tensor(label)}

    def augment(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Crop, flip, RandAugment (on 0-255 frames) and random erasing of one clip ``[C, T, H, W]``."""
        s = self.settings
        if s.crop == "none" and not s.flip and self.randaug is None and s.reprob <= 0:
            return video  # nothing to do: no round trip through pixel values
        size = video.shape[-1]
        frames = (denormalize(video).permute(1, 0, 2, 3) * 255).clamp_(0, 255)  # [T, C, H, W]
        if s.crop == "resized":
            box = random_resized_crop_box(frames.shape[-2], frames.shape[-1], rng)
            frames = frames[..., box.top:box.top + box.height, box.left:box.left + box.width]
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if s.flip and rng.random() < 0.5:
            frames = frames.flip(-1)
        if self.randaug is not None:
            frames = self.randaug(frames, rng)
        clip = normalize((frames / 255).permute(1, 0, 2, 3).contiguous())
        return random_erasing(clip, s.reprob, rng) if s.reprob > 0 else clip


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``-sum_k target_k log softmax(logits)_k``; ``target`` ``[B, K]``."""
    return -(target * logits.float().log_softmax(-1)).sum(-1).mean()


def set_drop_path(classifier: VideoClassifier, rate: float) -> None:
    """Stochastic depth rising linearly from 0 at the first block to ``rate`` at the last."""
    depth = classifier.depth
    for i, block in enumerate(classifier.blocks):
        block.drop_path = rate * i / max(depth - 1, 1)


def finetune(
    classifier: VideoClassifier, train: LabelledSplit, val: LabelledSplit | Dataset, settings: FinetuneSettings,
    device: torch.device, progress: bool = True, num_workers: int = 0, *, proc: Process = Process(),
    precision: torch.dtype | None = None, resume: dict | None = None,
    on_checkpoint: Callable[[dict], None] | None = None, ckpt_every: int = 0,
    on_log: Callable[[int, dict], None] | None = None, log_every: int = 10,
) -> dict:
    """Fine-tune ``classifier`` (in place) on ``train`` with ``settings``, then score it on ``val``.

    Under ``torchrun`` (``proc``) the classifier is wrapped in DistributedDataParallel and every
    epoch's clips are split over the processes; ``val`` is scored over the whole list, split and
    gathered (:func:`~adamae_rl.evaluation.testing.multi_view_scores`). ``val`` is a split
    (scored with ``settings.test_views``) or a dataset of multi-view items.

    Args:
        precision: autocast dtype (None: fp32; ``torch.float16`` adds a loss scaler).
        resume: a state from ``on_checkpoint`` to continue from.
        on_checkpoint: called on every process with the run's state every ``ckpt_every`` steps
            and at the end (the caller writes it on process 0).
        on_log: called on process 0 with ``(step, metrics)`` every ``log_every`` steps.
    Returns:
        ``{"top1", "top5", "final_train_loss", "train_clips", "val_clips", "epochs", "steps",
        "seconds", "settings"}`` (with EMA: the EMA model's ``top1``/``top5``, and ``raw_top1``/``raw_top5``).
    """
    start = time.perf_counter()
    classifier = classifier.to(device).train()
    set_drop_path(classifier, settings.drop_path)
    model = _ddp(classifier, device) if proc.distributed else classifier
    sampler = ResumableSampler(len(train), seed=settings.seed, shuffle=True, rank=proc.rank,
                               world_size=proc.world_size, per_rank=settings.batch_size)
    steps_per_epoch = max(len(train) // sampler.global_batch, 1)
    total, warmup = settings.schedule(steps_per_epoch)
    peak = settings.peak_lr(sampler.global_batch)
    groups = layer_decay_param_groups(classifier, settings.weight_decay, settings.layer_decay)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups], lr=peak, betas=tuple(settings.betas))
    scaler = torch.amp.GradScaler(device.type) if precision == torch.float16 else None
    ema = _ema(classifier, settings.ema_decay)
    step, losses = 0, []
    if resume is not None:
        step = _restore(resume, classifier, opt, scaler, ema, sampler)
    # A private generator: starting an epoch's iterator then never draws from torch's global RNG,
    # whose state (drop path's draws) a checkpoint carries.
    loader = DataLoader(AugmentedClips(train, settings), batch_size=settings.batch_size, sampler=sampler, drop_last=True,
                        num_workers=num_workers, collate_fn=_collate, multiprocessing_context="fork" if num_workers else None,
                        generator=torch.Generator().manual_seed(settings.seed))
    autocast = torch.autocast(device.type, dtype=precision) if precision is not None else nullcontext()
    bar = tqdm(total=total, initial=step, desc="fine-tune", unit="step", disable=not (progress and proc.is_main), leave=False)
    while step < total:
        for batch in loader:
            sampler.start += sampler.global_batch  # consumed (a resume continues after it)
            for group in opt.param_groups:
                group["lr"] = peak * group["lr_scale"] * lr_factor(step, total, warmup, peak, settings.min_lr)
            video, label = batch["video"].to(device), batch["label"].to(device)
            with autocast:
                loss = _loss(model, video, label, settings, np.random.default_rng([settings.seed, step, proc.rank, 0x317]))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if ema is not None:
                ema.update_parameters(classifier)
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if on_log is not None and proc.is_main and (step % log_every == 0 or step == total):
                on_log(step, {"finetune/loss": losses[-1], "finetune/lr": opt.param_groups[-1]["lr"],
                              "finetune/epoch": step / steps_per_epoch})
            if on_checkpoint is not None and ckpt_every and step % ckpt_every == 0 and step < total:
                on_checkpoint(_state(step, classifier, opt, scaler, ema, sampler))
            if step == total:
                break
        else:  # the epoch ended: the next one is a new permutation
            sampler.epoch, sampler.start = sampler.epoch + 1, 0
    bar.close()
    if on_checkpoint is not None:
        on_checkpoint(_state(step, classifier, opt, scaler, ema, sampler))
    views = val if not isinstance(val, LabelledSplit) else test_views(val, ViewSpec.parse(settings.test_views))
    scores = score_views(classifier, views, settings, device, proc, num_workers, precision)
    if ema is not None:
        raw = scores
        scores = {**score_views(ema.module, views, settings, device, proc, num_workers, precision),
                  "raw_top1": raw["top1"], "raw_top5": raw["top5"]}
    tail = losses[-max(1, len(losses) // 10):] or [float("nan")]  # the last tenth: one batch's loss is noisy
    final_loss = float(all_reduce_mean(torch.tensor(sum(tail) / len(tail), device=collective_device() if proc.distributed else "cpu")))
    return {
        **scores, "final_train_loss": final_loss, "train_clips": len(train), "val_clips": len(views),
        "epochs": step / steps_per_epoch, "steps": step, "seconds": time.perf_counter() - start,
        "settings": asdict(settings),
    }


def _loss(model: nn.Module, video: torch.Tensor, label: torch.Tensor, settings: FinetuneSettings,
          rng: np.random.Generator) -> torch.Tensor:
    """The batch's training loss: soft-target cross-entropy after Mixup/CutMix, else smoothed CE."""
    if settings.mixing:
        mixed, target = mixup_cutmix(video, label, _num_classes(model), rng, settings.mixup, settings.cutmix,
                                     settings.mixup_prob, settings.mixup_switch_prob, settings.label_smoothing)
        return soft_cross_entropy(model(mixed), target)
    return F.cross_entropy(model(video).float(), label, label_smoothing=settings.label_smoothing)


def _num_classes(model: nn.Module) -> int:
    return getattr(model, "module", model).head.out_features


def test_views(split: LabelledSplit, views: ViewSpec) -> Dataset:
    """The multi-view test set of a validation split: ``T x S`` views of each video of a list;
    one view of each clip of other sources (synthetic clips are rendered at the model's size)."""
    if isinstance(split.dataset, VideoClips):
        return Subset(MultiViewClips(split.dataset, views), split.indices)
    if views.count != 1:
        log.warning("test views %s asked for, but %s clips have one view each: scoring 1x1", views, type(split.dataset).__name__)
    return Subset(SingleView(split.dataset), split.indices)


def score_views(classifier: nn.Module, views: Dataset, settings: FinetuneSettings, device: torch.device,
                proc: Process = Process(), num_workers: int = 0, precision: torch.dtype | None = None) -> dict:
    """Top-1/top-5 over every video of ``views`` (multi-view items), split over the processes."""
    video_scores, labels = multi_view_scores(classifier, views, settings.batch_size, device, settings.view_scores,
                                             proc, num_workers, precision)
    if bool((labels < 0).any()):
        raise InputFileError("a validation video has no label (-1); testing needs labelled lines ('path label')")
    return topk_accuracy(video_scores, labels)


def _collate(items: list[dict]) -> dict:
    return default_collate([{"video": it["video"], "label": it["label"]} for it in items])


def _ddp(module: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)


def _ema(classifier: nn.Module, decay: float | None) -> AveragedModel | None:
    if decay is None:
        return None
    return AveragedModel(classifier, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def _state(step: int, classifier: nn.Module, opt: torch.optim.Optimizer, scaler: Any, ema: Any, sampler: ResumableSampler) -> dict:
    """What a resumed fine-tuning run needs (``weights_only``-loadable)."""
    return {
        "step": step, "model": classifier.state_dict(), "optimizer": opt.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "data": {"epoch": sampler.epoch, "start": sampler.start},
        "rng": ckpt_io.rng_state(),  # drop path draws from torch's generator
    }


def _restore(state: dict, classifier: nn.Module, opt: torch.optim.Optimizer, scaler: Any, ema: Any, sampler: ResumableSampler) -> int:
    classifier.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    sampler.epoch, sampler.start = int(state["data"]["epoch"]), int(state["data"]["start"])
    if state.get("rng") is not None:
        ckpt_io.set_rng_state(state["rng"])
    return int(state["step"])
