#!/usr/bin/env bash
# The GPU checks of issues 17 and 18 as one script, for a session that is lent a GPU (run from
# the repository root on the device machine; results land in $OUT, default benchmarks/results/gpu).
# About 9 minutes on an H100: keep the device call's timeout near 600 s.
#   1. training pipeline ratio, default ASEM model (32 fmaps, 204^3 -> 110^3), 12 and 15 workers
#   2. prediction voxels/s, default model: default and auto blocks, 1, 2 and 4 workers per GPU,
#      against the largest in-memory forward pass, float32 then bfloat16
#   3. Lucchi at 5 nm, default model, 10 minutes of training (issue 18 item 6), when time is left
set -uo pipefail
OUT=${OUT:-benchmarks/results/gpu}
PY=${PY:-python}
mkdir -p "$OUT"
export PYTHONPATH=.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.csv"
$PY benchmarks/train_step.py --device cuda --fmaps 32 --input 204 --iterations 30 \
    --precache-workers 12 15 --out "$OUT/train_step_f32_204.json" 2>&1 | tail -5
for precision in float32 bfloat16; do
    $PY benchmarks/predict_throughput.py --device cuda --precision $precision --fmaps 32 \
        --shape 512 512 512 --input-size 204 --workers 1 2 4 --skip monai \
        --out "$OUT/predict_f32_default_$precision.json" 2>&1 | tail -8
done
$PY benchmarks/predict_throughput.py --device cuda --fmaps 32 --shape 512 512 512 \
    --input-size auto --workers 1 2 --out "$OUT/predict_f32_auto.json" 2>&1 | tail -8
if [ "${LUCCHI:-0}" = 1 ]; then
    $PY benchmarks/lucchi_accuracy.py --method unet --recipe configs/lucchi_cpu_5nm.yaml \
        --minutes 10 --validate-minutes 2 --label "default ASEM model, GPU, 10 min" \
        --set model.num_fmaps=32 "training.input_size_voxels=[204,204,204]" \
        "training.output_size_voxels=[110,110,110]" torch.device=0 \
        --seeds 0 --out "$OUT/lucchi_gpu_10min" 2>&1 | tail -5
fi
ls -l "$OUT"
