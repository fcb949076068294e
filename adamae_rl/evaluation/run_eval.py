"""Evaluate a pre-training run: linear probe and/or fine-tuning, pre-trained vs random init."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamae_rl.api import geometry_of
from adamae_rl.builders import build_model, load_run
from adamae_rl.data.synthetic import LABELS
from adamae_rl.errors import ConfigError
from adamae_rl.evaluation.data import LabelledSplit, labelled_splits, num_classes_of
from adamae_rl.evaluation.encoder import VideoClassifier
from adamae_rl.evaluation.finetuning import FinetuneSettings, finetune
from adamae_rl.evaluation.probe import ProbeSettings, linear_probe
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.utils.distributed import resolve_device
from adamae_rl.utils.files import atomic_write_json, claim_file

log = logging.getLogger("adamae_rl.evaluation")

PROTOCOLS = ("probe", "finetune")
EVAL_FILE = "eval.json"


@dataclass
class EvalOptions:
    """What to evaluate and on which clips.

    Args:
        protocols: any of ``probe`` (frozen encoder) and ``finetune`` (whole encoder).
        random_init: also evaluate a freshly initialised encoder of the same config.
        train_clips, val_clips: labelled clips per split (None = the whole split).
        data_seed: clip family of synthetic data (the same for every run, so runs compare on
            the same clips whatever seed they were pre-trained with).
        train_list, val_list: separate labelled lists instead of the run's data.
        label: label set of synthetic clips (``adamae_rl.data.synthetic.LABELS``; None = the run's).
        num_classes: override the class count (default: from the data).
        checkpoint: file under ``RUN_DIR/checkpoints``.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        num_workers: loader workers (decoding real videos).
        progress: progress bars.
    """

    protocols: tuple[str, ...] = PROTOCOLS
    random_init: bool = False
    train_clips: int | None = 1024
    val_clips: int | None = 256
    data_seed: int = 0
    train_list: str | None = None
    val_list: str | None = None
    label: str | None = None
    num_classes: int | None = None
    checkpoint: str = "last.pt"
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    probe: ProbeSettings = field(default_factory=ProbeSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown or not self.protocols:
            raise ConfigError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {tuple(self.protocols)}")
        if self.label is not None and self.label not in LABELS:
            raise ConfigError(f"label must be one of {', '.join(LABELS)}; got {self.label!r}")


def evaluate_encoder(
    mae: VideoMAE, train: LabelledSplit, val: LabelledSplit, num_classes: int, options: EvalOptions, device: torch.device
) -> dict[str, dict]:
    """Run the chosen protocols on one encoder; returns ``{protocol: scores}``."""
    out = {}
    if "probe" in options.protocols:
        out["probe"] = linear_probe(mae, train, val, num_classes, options.probe, device, options.progress, options.num_workers)
        log.info("probe: top1=%.4f top5=%.4f", out["probe"]["top1"], out["probe"]["top5"])
    if "finetune" in options.protocols:
        torch.manual_seed(options.finetune.seed)  # the head's initial weights
        classifier = VideoClassifier(mae, num_classes)
        out["finetune"] = finetune(classifier, train, val, options.finetune, device, options.progress, options.num_workers)
        log.info("finetune: top1=%.4f top5=%.4f", out["finetune"]["top1"], out["finetune"]["top5"])
    return out


def evaluate_run(run_dir: str | Path, options: EvalOptions, out: str | Path | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and write ``eval.json`` there (or to ``out``).

    ``out`` is claimed before the work (:func:`~adamae_rl.utils.files.claim_file`): a file there
    that ``finetune`` did not write is refused unless ``force``. ``eval.json`` in the run
    directory is this toolkit's own name and is always rewritten.

    The file holds, per encoder (``pretrained``, and ``random_init`` when asked), per protocol,
    ``top1``/``top5`` on the validation clips; the top level repeats the pre-trained encoder's
    scores under the ``primary`` protocol (fine-tuning when it ran, else the probe).
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    target = claim_file(out, "finetune", force, inputs=[run_dir / "checkpoints"]) if out else run_dir / EVAL_FILE
    cfg, mae, _, ckpt = load_run(run_dir, options.checkpoint, with_policy=False)  # the encoder is all it needs
    device = resolve_device(options.device)
    train, val = labelled_splits(cfg["data"], geometry_of(mae), options.data_seed, options.train_clips,
                                 options.val_clips, options.train_list, options.val_list, options.label)
    data_name = "video" if options.train_list else cfg["data"]["name"]
    num_classes = options.num_classes or num_classes_of({"name": data_name}, train, val)
    label = options.label or (cfg["data"].get("label", "direction") if data_name == "synthetic" else "list")

    results: dict[str, Any] = {"pretrained": evaluate_encoder(mae, train, val, num_classes, options, device)}
    if options.random_init:
        torch.manual_seed(int(cfg["trainer"]["seed"]))  # the same initialisation pre-training started from
        results["random_init"] = evaluate_encoder(build_model(cfg["model"], load_weights=False), train, val, num_classes, options, device)
    primary = "finetune" if "finetune" in options.protocols else "probe"
    report = {
        "run_dir": str(run_dir), "checkpoint": options.checkpoint, "step": int(ckpt["step"]),
        "policy": cfg["policy"].get("name"), "mask_ratio": float(cfg["mask_ratio"]), "model": cfg["model"]["preset"],
        "data": data_name, "label": label, "num_classes": num_classes, "train_clips": len(train), "val_clips": len(val),
        "data_seed": options.data_seed, "device": str(device), "primary": primary,
        "top1": results["pretrained"][primary]["top1"], "top5": results["pretrained"][primary]["top5"],
        **results, "seconds": time.perf_counter() - start,
    }
    atomic_write_json(target, report)
    return report
