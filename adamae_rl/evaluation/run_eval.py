"""Evaluate a pre-trained encoder: linear probe and/or fine-tuning, pre-trained vs random init.

The encoder comes from a pre-training run directory or from any weights file the convert command
reads (an official VideoMAE/AdaMAE ``.pth``, a Hugging Face directory, a converted file); a
fine-tuned source keeps its classification head when it fits the label count.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamae_rl.api import geometry_of
from adamae_rl.builders import build_model, load_run
from adamae_rl.data.synthetic import LABELS
from adamae_rl.errors import ConfigError, InputFileError
from adamae_rl.evaluation.data import LabelledSplit, labelled_splits, num_classes_of
from adamae_rl.evaluation.encoder import VideoClassifier
from adamae_rl.evaluation.finetuning import FinetuneSettings, finetune
from adamae_rl.evaluation.probe import ProbeSettings, linear_probe
from adamae_rl.interop import load_classifier, load_model, read_weights
from adamae_rl.interop.huggingface import is_hf_dir
from adamae_rl.models.videomae import VideoMAE
from adamae_rl.builders import PRECISIONS
from adamae_rl.cli import RunError
from adamae_rl.utils import checkpoint as ckpt_io
from adamae_rl.utils.distributed import Process, barrier, resolve_device
from adamae_rl.utils.files import atomic_write_json, claim_file
from adamae_rl.utils.logs import MetricLog

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
        temporal_mode, sampling_rate: how clips are drawn from the labelled lists (None: the
            pre-training run's, else dense sampling 4 frames apart) — fine-tuning's own settings.
        reset_head: give a fine-tuned source a new head when its head does not fit the labels.
        precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA) autocast for fine-tuning and testing.
        run_dir: where fine-tuning writes its checkpoint and metrics (and resumes from); None: nowhere.
        ckpt_every: fine-tuning steps between checkpoints (with ``run_dir``).
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
    temporal_mode: str | None = None
    sampling_rate: int | None = None
    reset_head: bool = False
    precision: str = "fp32"
    run_dir: str | Path | None = None
    ckpt_every: int = 100

    def __post_init__(self) -> None:
        unknown = set(self.protocols) - set(PROTOCOLS)
        if unknown or not self.protocols:
            raise ConfigError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {tuple(self.protocols)}")
        if self.label is not None and self.label not in LABELS:
            raise ConfigError(f"label must be one of {', '.join(LABELS)}; got {self.label!r}")


def evaluate_encoder(
    mae: VideoMAE, train: LabelledSplit, val: LabelledSplit, num_classes: int, options: EvalOptions, device: torch.device,
    proc: Process = Process(), classifier: VideoClassifier | None = None, name: str = "pretrained",
) -> dict[str, dict]:
    """Run the chosen protocols on one encoder; returns ``{protocol: scores}``.

    ``classifier``: a fine-tuned source's classifier (its head fits ``num_classes``) to start
    fine-tuning from instead of a new head on ``mae``.
    """
    out = {}
    if "probe" in options.protocols:
        out["probe"] = linear_probe(mae, train, val, num_classes, options.probe, device, options.progress, options.num_workers)
        log.info("probe: top1=%.4f top5=%.4f", out["probe"]["top1"], out["probe"]["top5"])
    if "finetune" in options.protocols:
        torch.manual_seed(options.finetune.seed)  # the head's initial weights
        classifier = classifier if classifier is not None else VideoClassifier(mae, num_classes)
        hooks, metrics = _run_hooks(options, name, proc)
        try:
            out["finetune"] = finetune(classifier, train, val, options.finetune, device, options.progress, options.num_workers,
                                       proc=proc, precision=PRECISIONS[options.precision], **hooks)
        finally:
            if metrics is not None:
                metrics.close()
        log.info("finetune: top1=%.4f top5=%.4f", out["finetune"]["top1"], out["finetune"]["top5"])
    return out


def _run_hooks(options: EvalOptions, name: str, proc: Process) -> tuple[dict[str, Any], MetricLog | None]:
    """Checkpoint (resumed when present) and metrics of a fine-tuning run, in ``options.run_dir/name``
    (``pretrained``, ``random_init``): ``checkpoint.pt``, ``finetune.json``, ``metrics.jsonl``, ``tb/``."""
    if options.run_dir is None:
        return {}, None
    if (Path(options.run_dir) / "checkpoints" / "last.pt").exists():
        raise ConfigError(f"--run-dir {options.run_dir} holds a pre-training run: give fine-tuning a directory of its own")
    folder = Path(options.run_dir) / name
    path = folder / "checkpoint.pt"
    resume = None
    if path.exists():
        resume = ckpt_io.load_checkpoint(path)
        if resume.get("settings") != asdict(options.finetune):
            raise RunError(f"{path} was written with other fine-tuning settings: use another --run-dir, or delete it to start over")
        log.info("fine-tuning resumes from %s at step %d", path, resume["step"])
    metrics = MetricLog(folder, True, resume["step"] if resume else None) if proc.is_main else None
    if proc.is_main:  # what this run is: its settings and data, next to its metrics
        atomic_write_json(folder / "finetune.json", {
            "settings": asdict(options.finetune), "train_list": options.train_list, "val_list": options.val_list,
            "temporal_mode": options.temporal_mode, "sampling_rate": options.sampling_rate,
            "precision": options.precision, "world_size": proc.world_size,
        })

    def save(state: dict) -> None:
        if proc.is_main:
            ckpt_io.atomic_save({**state, "settings": asdict(options.finetune)}, path)
        barrier()

    hooks = {"resume": resume, "on_checkpoint": save, "ckpt_every": options.ckpt_every,
             "on_log": metrics.log if metrics is not None else None}
    return hooks, metrics


@dataclass
class Source:
    """What an evaluation starts from: the encoder, the pre-training run's config (None for a
    weights file), a fine-tuned source's classifier, and a description for the report."""

    mae: VideoMAE
    cfg: dict | None
    classifier: VideoClassifier | None
    about: dict


def load_source(source: str | Path, checkpoint: str = "last.pt") -> Source:
    """A pre-training run directory (``checkpoints/<checkpoint>``), or any weights source that
    ``python -m adamae_rl.convert`` reads."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: give a pre-training run directory or a weights file "
                                "(.pth, .pt, a Hugging Face directory)")
    if source.is_dir() and not is_hf_dir(source):
        cfg, mae, _, ckpt = load_run(source, checkpoint, with_policy=False)  # the encoder is all it needs
        about = {"step": int(ckpt["step"]), "policy": cfg["policy"].get("name"), "mask_ratio": float(cfg["mask_ratio"]),
                 "model": cfg["model"]["preset"]}
        return Source(mae, cfg, None, about)
    weights = read_weights(source)
    classifier = load_classifier(source) if weights.classifier else None
    mae = load_model(source) if not weights.classifier else _encoder_of(classifier)
    about = {"step": None, "policy": None, "mask_ratio": None, "model": f"weights ({weights.source})"}
    return Source(mae.eval(), None, classifier, about)


def _encoder_of(classifier: VideoClassifier) -> VideoMAE:
    """A VideoMAE holding a classifier's encoder (for the probe and a new head)."""
    mae = VideoMAE(classifier.cfg)
    mae.patch_embed.load_state_dict(classifier.patch_embed.state_dict())
    mae.blocks.load_state_dict(classifier.blocks.state_dict())
    if isinstance(classifier.norm, torch.nn.LayerNorm):
        mae.norm.load_state_dict(classifier.norm.state_dict())
    return mae


def _data_config(options: EvalOptions, run_cfg: dict | None) -> dict:
    """The labelled data's config: the run's own data, or the lists with fine-tuning's sampling."""
    if run_cfg is None and not options.train_list:
        raise ConfigError("a weights file carries no data: give --train-list and --val-list (labelled lists)")
    cfg = dict(run_cfg["data"]) if run_cfg is not None else {"name": "video"}
    if options.train_list:
        base = cfg if cfg.get("name") == "video" else {"name": "video"}
        cfg = {**base, "name": "video"}
        for key in ("temporal_mode", "sampling_rate"):
            if getattr(options, key) is not None:
                cfg[key] = getattr(options, key)
    return cfg


def evaluate_run(
    source: str | Path, options: EvalOptions, out: str | Path | None = None, proc: Process = Process(),
    force: bool = False,
) -> dict[str, Any]:
    """Evaluate the encoder of ``source`` and write ``eval.json`` (into a run directory source, the
    fine-tuning ``run_dir``, or ``out``).

    ``out`` is claimed before the work (:func:`~adamae_rl.utils.files.claim_file`): a file there
    that ``finetune`` did not write is refused unless ``force``. ``eval.json`` in a run directory
    is this toolkit's own name and is always rewritten.

    The file holds, per encoder (``pretrained``, and ``random_init`` when asked), per protocol,
    ``top1``/``top5`` on the validation clips; the top level repeats the pre-trained encoder's
    scores under the ``primary`` protocol (fine-tuning when it ran, else the probe). Under
    ``torchrun`` fine-tuning and testing are split over the processes; process 0 writes.
    """
    start = time.perf_counter()
    source = Path(source)
    if proc.distributed and "probe" in options.protocols:
        raise ConfigError("the linear probe runs in one process: use --protocol finetune under torchrun")
    inputs = [source / "checkpoints"] if source.is_dir() else [source]
    target = claim_file(out, "finetune", force, inputs=inputs) if out and proc.is_main else None
    loaded = load_source(source, options.checkpoint)
    device = resolve_device(options.device, proc.local_rank if proc.distributed else None)
    data_cfg = _data_config(options, loaded.cfg)
    train, val = labelled_splits(data_cfg, geometry_of(loaded.mae), options.data_seed, options.train_clips,
                                 options.val_clips, options.train_list, options.val_list, options.label)
    data_name = "video" if options.train_list else data_cfg["name"]
    num_classes = options.num_classes or num_classes_of({"name": data_name}, train, val)
    check_labels(train, val, num_classes)
    classifier = fitting_classifier(loaded.classifier, num_classes, options.reset_head)
    label = options.label or (data_cfg.get("label", "direction") if data_name == "synthetic" else "list")

    results: dict[str, Any] = {"pretrained": evaluate_encoder(loaded.mae, train, val, num_classes, options, device, proc, classifier)}
    if options.random_init:
        # The same initialisation pre-training started from (a weights file: seed 0).
        torch.manual_seed(int(loaded.cfg["trainer"]["seed"]) if loaded.cfg else 0)
        fresh = build_model(loaded.cfg["model"], load_weights=False) if loaded.cfg else VideoMAE(loaded.mae.cfg)
        results["random_init"] = evaluate_encoder(fresh, train, val, num_classes, options, device, proc, name="random_init")
    primary = "finetune" if "finetune" in options.protocols else "probe"
    report = {
        "run_dir": str(source), "checkpoint": options.checkpoint, **loaded.about,
        "data": data_name, "label": label, "num_classes": num_classes, "train_clips": len(train), "val_clips": len(val),
        "data_seed": options.data_seed, "device": str(device), "world_size": proc.world_size, "primary": primary,
        "top1": results["pretrained"][primary]["top1"], "top5": results["pretrained"][primary]["top5"],
        **results, "seconds": time.perf_counter() - start,
    }
    if proc.is_main:
        default = Path(options.run_dir) if options.run_dir else source if loaded.cfg is not None else Path(".")
        atomic_write_json(target or default / EVAL_FILE, report)
    return report


def check_labels(train: LabelledSplit, val: LabelledSplit, num_classes: int) -> None:
    """A list label at or past the class count is refused, naming the video and its label."""
    for split in (train, val):
        for entry in getattr(split.dataset, "entries", []):
            if entry.label >= num_classes:
                raise InputFileError(
                    f"{entry.path}: label {entry.label} is outside the {num_classes} classes (0..{num_classes - 1}); "
                    "fix the list or pass --num-classes"
                )


def fitting_classifier(classifier: VideoClassifier | None, num_classes: int, reset_head: bool) -> VideoClassifier | None:
    """A fine-tuned source's classifier when its head has ``num_classes`` outputs; with
    ``reset_head``, the same encoder under a new head; else a clear refusal."""
    if classifier is None:
        return None
    have = classifier.head.out_features
    if have == num_classes:
        return classifier
    if not reset_head:
        raise ConfigError(
            f"the checkpoint's classification head has {have} classes, the labels {num_classes}: "
            "pass --reset-head to fine-tune it under a new head"
        )
    return None  # evaluate_encoder puts a new head on the source's encoder
