#!/usr/bin/env bash
# The GPU figures in a few minutes: inference (bench_infer.py) and training steps (bench_train_step.py)
# on one device in strict float32, TF32 and float16.
#
#   benchmarks/gpu_check.sh                      # gpu:0, Sony frames, patch 512
#   benchmarks/gpu_check.sh --device gpu:1 --out results/gpu
#   benchmarks/gpu_check.sh --device cpu         # smoke test: the same commands, tiny sizes, on the CPU
#
# fp32 runs with NVIDIA_TF32_OVERRIDE=0 (convolutions in strict float32); "tf32" is TensorFlow's default
# float32 on Ampere and newer GPUs (TF32 tensor cores; the same as fp32 on older GPUs and on CPUs); fp16 is
# sid_ft's --precision fp16 (float16 arithmetic, float32 weights; training with a dynamic loss scale).
# Each benchmark's JSON lands in --out; a table of the medians is printed at the end.
set -euo pipefail

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    echo "options: --device D (default gpu:0)  --out DIR (default gpu_check_<device>)  --size HxW  --images N"
    echo "         --repeat N  --tiles LIST|none  --patch-size N  --steps N  --modes LIST"
}

DEVICE="gpu:0"
OUT=""
SIZE="" IMAGES="" REPEAT="" TILES="" PATCH="" STEPS="" MODES="" MATMUL=4096
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE="${2:?--device needs a value}"; shift 2 ;;
        --out) OUT="${2:?--out needs a folder}"; shift 2 ;;
        --size) SIZE="${2:?}"; shift 2 ;;
        --images) IMAGES="${2:?}"; shift 2 ;;
        --repeat) REPEAT="${2:?}"; shift 2 ;;
        --tiles) TILES="${2-}"; shift 2 ;;
        --patch-size) PATCH="${2:?}"; shift 2 ;;
        --steps) STEPS="${2:?}"; shift 2 ;;
        --modes) MODES="${2:?}"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
done
case "$DEVICE" in
    cpu) # smoke test: every command of the GPU check, at sizes that take seconds
        : "${SIZE:=128x192}" "${IMAGES:=1}" "${REPEAT:=1}" "${PATCH:=32}" "${STEPS:=1}" "${MODES:=full,cached}"
        : "${TILES:=none}"; MATMUL=256 ;;
    gpu|gpu:*)
        : "${SIZE:=2848x4256}" "${IMAGES:=4}" "${REPEAT:=3}" "${TILES:=1024}" "${PATCH:=512}" "${STEPS:=10}"
        : "${MODES:=full,inside,frozen,cached}" ;;
    *) echo "gpu_check.sh: --device $DEVICE: expected gpu:K (or cpu for the smoke test)" >&2; exit 2 ;;
esac
OUT="${OUT:-gpu_check_${DEVICE/:/}}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python}"
mkdir -p "$OUT"
[ "$DEVICE" = cpu ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
    > "$OUT/gpu.txt" 2>/dev/null || echo "nvidia-smi not available" > "$OUT/gpu.txt"

infer() {  # $1 label, $2 precisions, then env assignments
    local label="$1" precisions="$2"; shift 2
    echo "== inference, $label ($precisions) on $DEVICE"
    env "$@" "$PY" "$HERE/bench_infer.py" --device "$DEVICE" --size "$SIZE" --images "$IMAGES" --repeat "$REPEAT" \
        --tiles "$TILES" --matmul-size "$MATMUL" --precision "$precisions" --json "$OUT/infer_$label.json"
}
train_steps() {
    local label="$1" precisions="$2"; shift 2
    echo "== training steps, $label ($precisions) on $DEVICE"
    env "$@" "$PY" "$HERE/bench_train_step.py" --device "$DEVICE" --patch-size "$PATCH" --steps "$STEPS" \
        --warmup 1 --modes "$MODES" --precision "$precisions" --json "$OUT/train_$label.json"
}

infer fp32 fp32 NVIDIA_TF32_OVERRIDE=0
infer tf32_fp16 fp32,fp16
train_steps fp32 fp32 NVIDIA_TF32_OVERRIDE=0
train_steps tf32_fp16 fp32,fp16

"$PY" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print(f"\nsummary ({out}; {(out / 'gpu.txt').read_text().strip() if (out / 'gpu.txt').exists() else 'CPU smoke test'})")
labels = {("fp32", "fp32"): "fp32 (strict)", ("tf32_fp16", "fp32"): "tf32 (default fp32)",
          ("tf32_fp16", "fp16"): "fp16"}
print(f"{'precision':22s} {'bare forward s':>15s} {'end to end s':>13s}")
for (f, p), name in labels.items():
    d = json.loads((out / f"infer_{f}.json").read_text())
    print(f"{name:22s} {d['bare_s'][p]:15.3f} {d['end_to_end_s'][p]:13.3f}")
rows = {}
for (f, p), name in labels.items():
    d = json.loads((out / f"train_{f}.json").read_text())
    several = len(d["precisions"]) > 1  # then the keys are '<mode> <precision>'
    for key, seconds in d["median_step_s"].items():
        if several and not key.endswith(" " + p):
            continue
        rows.setdefault(key[:-len(p) - 1] if several else key, {})[name] = seconds
print(f"\n{'training mode, ms/step':28s}" + "".join(f"{n:>22s}" for n in labels.values()))
for mode, values in rows.items():
    print(f"{mode:28s}" + "".join(f"{values.get(n, float('nan')) * 1000:22.1f}" for n in labels.values()))
EOF
