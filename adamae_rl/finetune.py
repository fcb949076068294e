"""``python -m adamae_rl.finetune SOURCE``: score a pre-trained encoder on labelled clips.

Examples::

    python -m adamae_rl.finetune runs/adaptive-tiny-synthetic-m0.9-s0                 # probe + fine-tune
    python -m adamae_rl.finetune RUN_DIR --protocol probe --random-init                # vs random init
    python -m adamae_rl.finetune RUN_DIR --train-list k/train.txt --val-list k/val.txt  # labelled lists
    torchrun --nproc_per_node=8 -m adamae_rl.finetune checkpoint-799.pth --protocol finetune \
        --recipe ssv2_vit_b --train-list ssv2/train.txt --val-list ssv2/val.txt --run-dir ft --device cuda

SOURCE is a pre-training run directory or any weights file ``python -m adamae_rl.convert`` reads
(an official VideoMAE/AdaMAE ``.pth``, a Hugging Face directory, a converted ``.pt``). Two
protocols (VideoMAE's): a **linear probe** on the frozen encoder's mean-pooled output over all
tokens, and **full fine-tuning** with layer-wise learning-rate decay, by a recipe
(``--recipe``: ``quick``, ``cpu``, ``ssv2_vit_b``, ``k400_vit_b``; docs/finetuning.md) and tested
on ``--test-views`` views per video. Top-1/top-5 go to ``eval.json`` and to stdout.
``--random-init`` evaluates an untrained encoder of the same config the same way.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields, replace
from pathlib import Path

from adamae_rl.cli import ArgumentParser, run_command, setup_logging

from adamae_rl.evaluation.finetuning import RECIPES, FinetuneSettings
from adamae_rl.evaluation.testing import VIEW_SCORES
from adamae_rl.utils.distributed import init_process, shutdown
from adamae_rl.data.synthetic import LABELS
from adamae_rl.evaluation.encoder import POOLINGS
from adamae_rl.evaluation.probe import ProbeSettings
from adamae_rl.evaluation.run_eval import EVAL_FILE, PROTOCOLS, EvalOptions, evaluate_run

log = logging.getLogger("adamae_rl.finetune")


def _at_least(low: int | float, kind: type = int):
    """argparse type: a number of ``kind`` no smaller than ``low``, named in the error."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not (value >= low and value == value and abs(value) != float("inf")):
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {text}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    pr = ProbeSettings()
    p = ArgumentParser(prog="python -m adamae_rl.finetune", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("source", type=Path, help="a pre-training run directory, or a weights file or Hugging Face directory")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both", help="probe, finetune or both")
    p.add_argument("--random-init", action="store_true", help="also evaluate a randomly initialised encoder")
    p.add_argument("--checkpoint", default="last.pt", help="checkpoint file under RUN_DIR/checkpoints (run directories)")
    data = p.add_argument_group("labelled data")
    data.add_argument("--train-clips", type=_at_least(0), default=1024, help="training clips (0 = the whole split)")
    data.add_argument("--val-clips", type=_at_least(0), default=256, help="validation clips (0 = the whole split)")
    data.add_argument("--data-seed", type=int, default=0, help="synthetic clip family (same for every run)")
    data.add_argument("--train-list", help="labelled VideoMAE list ('path label') instead of the run's data")
    data.add_argument("--val-list", help="labelled validation list (with --train-list)")
    data.add_argument("--temporal-mode", choices=["dense", "segments"],
                      help="frames from the lists: dense windows (Kinetics) or one per segment (SSv2); default: the recipe's")
    data.add_argument("--sampling-rate", type=_at_least(1), help="frame stride of dense windows (default: the run's, else 4)")
    data.add_argument("--label", choices=LABELS, help="label set of synthetic clips (default: the run's data.label)")
    data.add_argument("--num-classes", type=_at_least(2), help="class count (default: the synthetic label set's, max label + 1 for lists)")
    data.add_argument("--workers", type=_at_least(0), default=0, help="loader worker processes")
    probe = p.add_argument_group("linear probe")
    probe.add_argument("--probe-l2", type=_at_least(0, float), default=pr.l2, help="L2 penalty of the logistic regression")
    probe.add_argument("--probe-pool", choices=POOLINGS, default=pr.pool,
                       help="mean over all tokens (VideoMAE); per-temporal-slice means (time) or means over a "
                            "4x4x4 space-time grid (grid), concatenated")
    probe.add_argument("--probe-iters", type=_at_least(1), default=pr.max_iter, help="L-BFGS iterations")
    tune = p.add_argument_group("fine-tuning (unset values come from --recipe)")
    tune.add_argument("--recipe", choices=sorted(RECIPES), default="quick",
                      help="quick: the short CPU default; cpu: VideoMAE's recipe at a CPU budget; ssv2_vit_b, k400_vit_b: VideoMAE's")
    tune.add_argument("--steps", type=_at_least(1), help="optimizer steps (instead of the recipe's length)")
    tune.add_argument("--epochs", type=_at_least(0.001, float), help="epochs of the training clips (instead of the recipe's length)")
    tune.add_argument("--batch-size", type=_at_least(1), help="clips per process per step (and per encoder pass)")
    tune.add_argument("--lr", type=_at_least(0, float), help="peak learning rate of the head")
    tune.add_argument("--blr", type=_at_least(0, float), help="peak as a base rate: lr = blr * global batch / 256")
    tune.add_argument("--layer-decay", type=_at_least(0, float), help="per-layer learning-rate decay")
    tune.add_argument("--weight-decay", type=_at_least(0, float), help="AdamW weight decay")
    tune.add_argument("--warmup-steps", type=_at_least(0), help="linear warmup steps")
    tune.add_argument("--warmup-epochs", type=_at_least(0, float), help="linear warmup epochs")
    tune.add_argument("--label-smoothing", type=_at_least(0, float), help="cross-entropy label smoothing")
    tune.add_argument("--drop-path", type=_at_least(0, float), help="largest stochastic-depth rate")
    tune.add_argument("--mixup", type=_at_least(0, float), help="Mixup's Beta parameter (0 = off)")
    tune.add_argument("--cutmix", type=_at_least(0, float), help="CutMix's Beta parameter (0 = off)")
    tune.add_argument("--reprob", type=_at_least(0, float), help="random-erasing probability per frame")
    tune.add_argument("--randaug-ops", type=_at_least(0), help="RandAugment operations per clip (0 = off)")
    tune.add_argument("--randaug-magnitude", type=_at_least(0, float), help="RandAugment magnitude (of 10)")
    tune.add_argument("--ema-decay", type=_at_least(0, float), help="score an exponential moving average of the weights")
    tune.add_argument("--test-views", help="views per validation video, TxS (SSv2 2x3, Kinetics-400 5x3)")
    tune.add_argument("--view-scores", choices=VIEW_SCORES, help="average the views' softmax (VideoMAE) or logits (AdaMAE's code)")
    tune.add_argument("--seed", type=int, help="head initialisation, clip order and augmentation")
    tune.add_argument("--reset-head", action="store_true", help="a fine-tuned source whose head does not fit the labels gets a new head")
    tune.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32", help="autocast (fp16: CUDA only)")
    tune.add_argument("--run-dir", type=Path, help="write fine-tuning checkpoints and metrics here, and resume from them")
    tune.add_argument("--ckpt-every", type=_at_least(1), default=100, help="fine-tuning steps between checkpoints")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: cuda -> cuda:LOCAL_RANK)")
    p.add_argument("--out", type=Path, help="where to write the report (default: eval.json in --run-dir, else in SOURCE)")
    p.add_argument("--force", action="store_true", help="overwrite an --out file that finetune did not write")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.steps is not None and args.epochs is not None:
        p.error("give --steps or --epochs, not both")
    if args.warmup_steps is not None and args.warmup_epochs is not None:
        p.error("give --warmup-steps or --warmup-epochs, not both")
    return args


def finetune_settings(args: argparse.Namespace) -> FinetuneSettings:
    """The recipe's settings with the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in fields(FinetuneSettings) if getattr(args, f.name, None) is not None}
    if "steps" in given or "epochs" in given:  # a length in the other unit replaces the recipe's
        given.setdefault("steps", None)
        given.setdefault("epochs", None)
    if "warmup_steps" in given or "warmup_epochs" in given:
        given.setdefault("warmup_steps", None)
        given.setdefault("warmup_epochs", None)
    settings = replace(RECIPES[args.recipe], **given)
    if settings.steps is not None and settings.warmup_steps is not None:
        settings = replace(settings, warmup_steps=min(settings.warmup_steps, settings.steps))
    return settings


def options_from_args(args: argparse.Namespace) -> EvalOptions:
    settings = finetune_settings(args)
    return EvalOptions(
        protocols=PROTOCOLS if args.protocol == "both" else (args.protocol,),
        random_init=args.random_init,
        train_clips=args.train_clips or None,
        val_clips=args.val_clips or None,
        data_seed=args.data_seed,
        train_list=args.train_list,
        label=args.label,
        val_list=args.val_list,
        num_classes=args.num_classes,
        checkpoint=args.checkpoint,
        device=args.device,
        num_workers=args.workers,
        progress=not args.no_progress,
        probe=ProbeSettings(l2=args.probe_l2, max_iter=args.probe_iters, batch_size=settings.batch_size, pool=args.probe_pool),
        finetune=settings,
        temporal_mode=args.temporal_mode or ("segments" if args.recipe == "ssv2_vit_b" else None),
        sampling_rate=args.sampling_rate or (4 if args.recipe == "k400_vit_b" else None),
        reset_head=args.reset_head,
        precision=args.precision,
        run_dir=args.run_dir,
        ckpt_every=args.ckpt_every,
    )


def format_report(report: dict) -> str:
    """One line per (encoder, protocol): top-1/top-5 on the validation clips.

    Top-1 carries its binomial standard error over the validation clips and the header the chance
    level, so that a gap of a few points on a few hundred clips is not read as a difference.
    """
    classes, val = report["num_classes"], max(int(report["val_clips"]), 1)
    lines = [f"{report['run_dir']} (step {report['step']}, {report['policy']} m{report['mask_ratio']}, "
             f"{report['train_clips']} train / {val} val clips, labels {report.get('label', 'n/a')}: {classes} classes, "
             f"chance top1={1 / classes:.4f})"]
    for encoder in ("pretrained", "random_init"):
        for protocol, scores in report.get(encoder, {}).items():
            se = (scores["top1"] * (1 - scores["top1"]) / val) ** 0.5
            lines.append(f"  {encoder:<11} {protocol:<8} top1={scores['top1']:.4f} (s.e. {se:.4f}) top5={scores['top5']:.4f}")
    for protocol, scores in report.get("random_init", {}).items():
        lines += gap_lines(report, protocol, report["pretrained"][protocol]["top1"], scores["top1"], val)
    return "\n".join(lines)


def gap_lines(report: dict, protocol: str, pretrained: float, random_init: float, val: int) -> list[str]:
    """The gap between the pre-trained and the random encoder, and, where pre-training does not
    show, plainly why a short run cannot show it."""
    se = ((pretrained * (1 - pretrained) + random_init * (1 - random_init)) / val) ** 0.5
    gap = pretrained - random_init
    lines = [f"  {protocol}: pre-trained - random init = {100 * gap:+.1f} points ({gap / max(se, 1e-12):+.1f} s.e., unpaired)"]
    if gap <= 2 * se:
        lines.append(
            f"  the pre-trained encoder is not above its random initialisation on this {protocol}: after "
            f"{report.get('step')} pre-training steps the encoder has not learned what these labels need. "
            "Pre-training shows with a "
            "longer run (trainer.max_steps=...), the probe that keeps where and when things move "
            "(--probe-pool grid; a mean over all tokens erases motion direction), or fine-tuning; see the "
            "results page docs/results/demo-budget.md."
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    args = parse_args(argv)

    def evaluate() -> dict:
        options = options_from_args(args)
        proc, _ = init_process(args.device)
        try:
            return evaluate_run(args.source, options, args.out, proc, args.force) | {"is_main": proc.is_main}
        finally:
            shutdown()

    report = run_command(evaluate, setup=False)
    if report.pop("is_main"):
        print(format_report(report))
        print(f"wrote {args.out or (args.run_dir or args.source) / EVAL_FILE}")


if __name__ == "__main__":
    main()
