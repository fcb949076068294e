"""``python -m adamae_rl.finetune RUN_DIR``: score a pre-trained encoder on labelled clips.

Examples::

    python -m adamae_rl.finetune runs/adaptive-tiny-synthetic-m0.9-s0                 # probe + fine-tune
    python -m adamae_rl.finetune RUN_DIR --protocol probe --random-init                # vs random init
    python -m adamae_rl.finetune RUN_DIR --train-list k/train.txt --val-list k/val.txt  # labelled lists

Two protocols (VideoMAE's): a **linear probe** on the frozen encoder's mean-pooled output over
all tokens, and **full fine-tuning** with layer-wise learning-rate decay. Top-1/top-5 on the
validation clips go to ``RUN_DIR/eval.json`` and to stdout. ``--random-init`` evaluates an
untrained encoder of the same config the same way, next to the pre-trained one.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from adamae_rl.cli import ArgumentParser, run_command, setup_logging

from adamae_rl.evaluation.finetuning import FinetuneSettings
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
    ft, pr = FinetuneSettings(), ProbeSettings()
    p = ArgumentParser(prog="python -m adamae_rl.finetune", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a pre-training run directory (holds checkpoints/last.pt)")
    p.add_argument("--protocol", choices=[*PROTOCOLS, "both"], default="both", help="probe, finetune or both")
    p.add_argument("--random-init", action="store_true", help="also evaluate a randomly initialised encoder")
    p.add_argument("--checkpoint", default="last.pt", help="checkpoint file under RUN_DIR/checkpoints")
    data = p.add_argument_group("labelled data")
    data.add_argument("--train-clips", type=_at_least(0), default=1024, help="training clips (0 = the whole split)")
    data.add_argument("--val-clips", type=_at_least(0), default=256, help="validation clips (0 = the whole split)")
    data.add_argument("--data-seed", type=int, default=0, help="synthetic clip family (same for every run)")
    data.add_argument("--train-list", help="labelled VideoMAE list ('path label') instead of the run's data")
    data.add_argument("--val-list", help="labelled validation list (with --train-list)")
    data.add_argument("--label", choices=LABELS, help="label set of synthetic clips (default: the run's data.label)")
    data.add_argument("--num-classes", type=_at_least(2), help="class count (default: the synthetic label set's, max label + 1 for lists)")
    data.add_argument("--workers", type=_at_least(0), default=0, help="loader worker processes")
    probe = p.add_argument_group("linear probe")
    probe.add_argument("--probe-l2", type=_at_least(0, float), default=pr.l2, help="L2 penalty of the logistic regression")
    probe.add_argument("--probe-pool", choices=POOLINGS, default=pr.pool,
                       help="mean over all tokens (VideoMAE); per-temporal-slice means (time) or means over a "
                            "4x4x4 space-time grid (grid), concatenated")
    probe.add_argument("--probe-iters", type=_at_least(1), default=pr.max_iter, help="L-BFGS iterations")
    tune = p.add_argument_group("fine-tuning")
    tune.add_argument("--steps", type=_at_least(1), default=ft.steps, help="optimizer steps")
    tune.add_argument("--batch-size", type=_at_least(1), default=ft.batch_size, help="clips per step (and per encoder pass)")
    tune.add_argument("--lr", type=_at_least(0, float), default=ft.lr, help="peak learning rate of the head")
    tune.add_argument("--layer-decay", type=_at_least(0, float), default=ft.layer_decay, help="per-layer learning-rate decay")
    tune.add_argument("--weight-decay", type=_at_least(0, float), default=ft.weight_decay, help="AdamW weight decay")
    tune.add_argument("--warmup-steps", type=_at_least(0), default=ft.warmup_steps, help="linear warmup steps")
    tune.add_argument("--label-smoothing", type=_at_least(0, float), default=ft.label_smoothing, help="cross-entropy label smoothing")
    tune.add_argument("--seed", type=int, default=ft.seed, help="head initialisation and clip order")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", type=Path, help=f"where to write the report (default: RUN_DIR/{EVAL_FILE})")
    p.add_argument("--force", action="store_true", help="overwrite an --out file that finetune did not write")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def options_from_args(args: argparse.Namespace) -> EvalOptions:
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
        probe=ProbeSettings(l2=args.probe_l2, max_iter=args.probe_iters, batch_size=args.batch_size,
                            pool=args.probe_pool),
        finetune=FinetuneSettings(
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, layer_decay=args.layer_decay,
            weight_decay=args.weight_decay, warmup_steps=min(args.warmup_steps, args.steps),
            label_smoothing=args.label_smoothing, seed=args.seed,
        ),
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    setup_logging()
    args = parse_args(argv)
    report = run_command(lambda: evaluate_run(args.run_dir, options_from_args(args), args.out, args.force), setup=False)
    print(format_report(report))
    print(f"wrote {args.out or args.run_dir / EVAL_FILE}")


if __name__ == "__main__":
    main()
