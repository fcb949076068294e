"""Full fine-tuning with layer-wise learning-rate decay, as VideoMAE.

Layer ids follow VideoMAE's ``get_layer_id_for_vit``: the patch embedding (and position table) is
layer 0, encoder block ``i`` is layer ``i + 1``, everything after the blocks (final norms, head) is
layer ``depth + 1``. A parameter of layer ``l`` trains at ``lr * decay ** (depth + 1 - l)``: the
head at the full rate, the last block at ``decay``, the first at ``decay ** depth`` and the patch
embedding at ``decay ** (depth + 1)``, so early layers, which hold the most general features, move
least.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from adamae_rl.evaluation.data import LabelledSplit, batches
from adamae_rl.evaluation.encoder import VideoClassifier
from adamae_rl.evaluation.metrics import topk_accuracy
from adamae_rl.utils.optim import decays, warmup_cosine_factor


@dataclass
class FinetuneSettings:
    """Fine-tuning budget and optimizer (VideoMAE's recipe, shrunk to a short CPU run).

    Args:
        steps: optimizer steps.
        batch_size: clips per step.
        lr: peak learning rate of the head (the other layers get ``lr * layer_decay ** k``).
        layer_decay: per-layer learning-rate decay.
        weight_decay: AdamW weight decay on weight matrices.
        warmup_steps: linear warmup, then cosine decay to ``min_lr``.
        min_lr: final learning rate of the head.
        label_smoothing: cross-entropy label smoothing (VideoMAE: 0.1).
        seed: head initialisation and clip order.
    """

    steps: int = 200
    batch_size: int = 16
    lr: float = 1e-3
    layer_decay: float = 0.75
    weight_decay: float = 0.05
    warmup_steps: int = 20
    min_lr: float = 1e-6
    label_smoothing: float = 0.1
    seed: int = 0


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


def lr_factor(step: int, settings: FinetuneSettings) -> float:
    """Multiplier of the peak rate at ``step``: linear warmup, then cosine to ``min_lr / lr``."""
    return warmup_cosine_factor(step, settings.warmup_steps, settings.steps, settings.min_lr / settings.lr)


def finetune(
    classifier: VideoClassifier, train: LabelledSplit, val: LabelledSplit, settings: FinetuneSettings,
    device: torch.device, progress: bool = True, num_workers: int = 0,
) -> dict:
    """Fine-tune ``classifier`` (in place) on ``train`` and score it on ``val``.

    Returns:
        ``{"top1", "top5", "final_train_loss", "train_clips", "val_clips", "seconds", "settings"}``.
    """
    start = time.perf_counter()
    classifier = classifier.to(device).train()
    groups = layer_decay_param_groups(classifier, settings.weight_decay, settings.layer_decay)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups],
                            lr=settings.lr, betas=(0.9, 0.999))
    step, epoch, losses = 0, 0, []
    bar = tqdm(total=settings.steps, desc="fine-tune", unit="step", disable=not progress, leave=False)
    while step < settings.steps:
        for video, label in batches(train, settings.batch_size, epoch, shuffle_seed=settings.seed, num_workers=num_workers):
            for group in opt.param_groups:
                group["lr"] = settings.lr * group["lr_scale"] * lr_factor(step, settings)
            logits = classifier(video.to(device))
            loss = F.cross_entropy(logits, label.to(device), label_smoothing=settings.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
            if step == settings.steps:
                break
        epoch += 1
    bar.close()
    scores = score(classifier, val, settings.batch_size, device, num_workers)
    tail = losses[-max(1, len(losses) // 10):]  # the last tenth: one batch's loss is noisy
    return {
        **scores, "final_train_loss": sum(tail) / len(tail), "train_clips": len(train), "val_clips": len(val),
        "epochs": step * settings.batch_size / max(len(train), 1), "seconds": time.perf_counter() - start,
        "settings": asdict(settings),
    }


@torch.no_grad()
def score(classifier: VideoClassifier, split: LabelledSplit, batch_size: int, device: torch.device, num_workers: int = 0) -> dict:
    """Top-1/top-5 of ``classifier`` on every clip of ``split``."""
    classifier.eval()
    logits, labels = [], []
    for video, label in batches(split, batch_size, num_workers=num_workers):
        logits.append(classifier(video.to(device)).float().cpu())
        labels.append(label)
    return topk_accuracy(torch.cat(logits), torch.cat(labels))
