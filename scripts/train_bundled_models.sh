#!/usr/bin/env bash
# Retrain the two bundled models exactly as shipped (2 CPU cores: a few minutes each), then copy the
# final weights into metrics/weights/. Usage: bash scripts/train_bundled_models.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/bundled}
COMMON=(--seed 0 --eval-dataset sample --eval-split test --no-progress)

# 1. convsim-tiny: an ordinary CNN, hinge loss (margin 0.5) on the sample train split.
python run_bench.py train finetune --metric convsim-tiny --dataset sample --split train \
  --margin 0.5 --epochs 12 --batch-size 64 --lr 1e-3 --rot90 "${COMMON[@]}" --out "$RUN/convsim-tiny"
cp "$RUN/convsim-tiny/final.pt" metrics/weights/convsim-tiny.pt

# 2. lipsim-tiny, step 1: distil convsim-tiny's centred unit embeddings, scaled x20, into the tiny SLL network.
python run_bench.py train distill --student lipsim-tiny --teacher convsim-tiny --images dataset:sample:train \
  --target-scale 20 --epochs 5 --batch-size 128 --lr 3e-3 "${COMMON[@]}" --out "$RUN/lipsim-tiny-distill"

# 3. lipsim-tiny, step 2: hinge fine-tuning (margin 0.5) from the distilled weights.
python run_bench.py train finetune --metric "$RUN/lipsim-tiny-distill/final.pt" --dataset sample --split train \
  --margin 0.5 --epochs 3 --batch-size 64 --lr 1e-3 --rot90 "${COMMON[@]}" --out "$RUN/lipsim-tiny-finetune"
cp "$RUN/lipsim-tiny-finetune/final.pt" metrics/weights/lipsim-tiny.pt
