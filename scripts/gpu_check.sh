#!/usr/bin/env bash
# One short check of pre-training on one GPU (about 5 minutes):
#   1. python -m adamae_rl.bench vit_b_224 in bf16: step time, clips/s, MFU, peak memory;
#   2. 50 steps of experiment=paper_ssv2_vit_b on generated videos, then its summary.
# Usage: bash scripts/gpu_check.sh [OUT_DIR]   (default: a temporary folder)
set -euo pipefail
out=${1:-$(mktemp -d)}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
python - <<'PY'
import torch
assert torch.cuda.is_available(), "scripts/gpu_check.sh needs a CUDA GPU"
print("gpu:", torch.cuda.get_device_name(0), "| torch", torch.__version__)
PY

echo "== bench: vit_b_224, bf16"
python -m adamae_rl.bench vit_b_224 --device cuda --precision bf16 --json "$out/bench.jsonl"

echo "== 50 steps of experiment=paper_ssv2_vit_b on generated videos"
python -m adamae_rl.data.make_synthetic "$out/videos" --num-videos 256 --val-videos 32 --frames 48 --size 128
python -m adamae_rl.train experiment=paper_ssv2_vit_b \
  data.train_list="$out/videos/train.txt" data.val_list="$out/videos/val.txt" \
  trainer.max_epochs=null trainer.max_steps=50 trainer.global_batch_size=null trainer.batch_size=32 \
  optim.warmup_epochs=null optim.warmup_steps=10 trainer.eval_every=50 trainer.ckpt_every=50 \
  trainer.log_every=10 trainer.device=cuda trainer.progress=false run_dir="$out/run"
echo "== summary"
cat "$out/run/summary.json"; echo
