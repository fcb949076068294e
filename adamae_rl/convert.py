"""``python -m adamae_rl.convert SRC DST``: convert pre-trained video MAE weights.

Reads an official VideoMAE / VideoMAE V2 / AdaMAE ``.pth``, a Hugging Face VideoMAE directory,
or this toolkit's file / run checkpoint, and writes this toolkit's ``.pt`` file or a Hugging Face
directory. Every source tensor must find its place; files are read with
``torch.load(weights_only=True)`` (no pickled code runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from adamae_rl.cli import ArgumentParser, run_command
from adamae_rl.errors import OutputError

EXAMPLES = """examples:
  python -m adamae_rl.convert checkpoint-799.pth videomae_b.pt             # official VideoMAE -> adamae_rl
  python -m adamae_rl.convert adamae_ssv2.pth adamae.pt                    # AdaMAE, sampler included
  python -m adamae_rl.convert videomae_b.pt hf_videomae_b/                 # -> Hugging Face directory
  python -m adamae_rl.convert hf_videomae_b/ back.pt --to adamae_rl
  python -m adamae_rl.convert runs/adaptive-tiny-synthetic-m0.9-s0 tiny_hf --to hf
  python -m adamae_rl.convert runs/paper_ssv2_vit_b-s0 checkpoint-799.pth --to official
  python -m adamae_rl.train model=vit_b model.init_from=videomae_b.pt      # continue pre-training

Shapes cannot tell attention heads or clip size; official checkpoints record them in their `args`
and Hugging Face configs always do. Otherwise pass --num-heads/--decoder-num-heads/--img-size/--num-frames.
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m adamae_rl.convert", description=__doc__.split("\n\n")[0].split(": ", 1)[1],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", type=Path, help="checkpoint file or directory to read")
    parser.add_argument("dst", type=Path, help="file (.pt/.pth) or directory to write")
    parser.add_argument("--from", dest="src_format", choices=["official", "hf", "adamae_rl"],
                        help="source format (default: inferred from SRC)")
    parser.add_argument("--to", dest="dst_format", choices=["hf", "adamae_rl", "official"],
                        help="target format (default: adamae_rl for a .pt/.pth DST, else hf; official: the "
                             "VideoMAE/AdaMAE .pth layout, which their code fine-tunes)")
    for flag in ("img-size", "num-frames", "num-heads", "decoder-num-heads"):
        parser.add_argument(f"--{flag}", type=int, help="geometry the source does not record")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing DST (a Hugging Face folder loses every file an earlier export wrote)")
    return parser.parse_args(argv)


def target_format(dst: Path, forced: str | None) -> str:
    if forced:
        return forced
    return "adamae_rl" if dst.suffix in (".pt", ".pth") else "hf"


def run(args: argparse.Namespace) -> str:
    """Convert; returns a one-line summary."""
    from dataclasses import asdict

    from adamae_rl.interop import complete_config, read_weights, write_weights
    from adamae_rl.utils.files import is_inside

    fmt = target_format(args.dst, args.dst_format)
    if args.dst.exists() and not args.force:
        raise OutputError(f"{args.dst} exists; pass --force to overwrite")
    if is_inside(args.dst, args.src) or is_inside(args.src, args.dst):
        raise OutputError(f"{args.dst} is (or holds) the source {args.src}; choose another destination")
    weights = read_weights(args.src, args.src_format)
    given = {"img_size": args.img_size, "num_frames": args.num_frames, "num_heads": args.num_heads,
             "decoder_num_heads": args.decoder_num_heads}
    given = {k: v for k, v in given.items() if v is not None}
    if given or fmt in ("hf", "official"):
        if weights.has_decoder:  # a full MAE: every geometry field must be known (or given)
            full = asdict(complete_config(weights, **given))
            if "norm_target" not in weights.config:  # not recorded by the source: do not invent it
                full.pop("norm_target")
            weights.config = full
        else:
            weights.config = {**weights.config, **given}
    write_weights(weights, args.dst, fmt, force=args.force, inputs=(args.src,))
    parts = [f"{len(weights.model)} MAE tensors"]
    if weights.policy:
        parts.append(f"{len(weights.policy)} sampler tensors")
    if weights.classifier:
        parts.append(f"{len(weights.classifier)} classifier tensors")
    notes = f"; notes: {' | '.join(weights.notes)}" if weights.notes else ""
    return f"wrote {args.dst} ({fmt}) from {weights.source}: {', '.join(parts)}{notes}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(run_command(lambda: run(args)))


if __name__ == "__main__":
    main()
