#!/bin/bash
# The ablation of models/README.md ("Beyond bottle") on a GPU machine, in one go. Needs the prepared data
# (python3 -m models.ablation prepare --out .devdata) in the repository root. Writes the tables, the log and
# a tarball of every run's logs and result.json to $OUT (default /tmp/ablation-out).
# Usage: OUT=DIR DEADLINE=450 JOBS=16 bash models/device_ablation.sh [variant,variant,...]
set -u
PY=${PY:-python3}
EXTRA=${EXTRA:-}
OUT=${OUT:-/tmp/ablation-out}
W=${WORK:-/tmp/ablation-runs}
DATA=${DATA:-.devdata}
mkdir -p "$OUT" "$W"
export RDRE_TFLITE=$PWD/.devdata/mobilenet_v2_1.0_224_quant.tflite PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
VARIANTS=${1:-plain-rd,paper,builtin-tex,normal-0.5,no-fusion,seg-normal-0.5,fg-self-segn,no-lda,no-caams,self-0.5,fg,fg-self-n0.5,gate,fusion-norm,anomaly-weight-1,gate-fg-self-segn}
t0=$(date +%s)
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
nproc
$PY -c "import torch, numpy, flatbuffers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numpy', numpy.__version__)"
# Smoke test: two steps at 64 px on the GPU, train + evaluate, before the long runs.
if ! $PY -m models.ablation one --data "$DATA" --category mtd --variant paper --out /tmp/smoke --size 64 \
    --steps-student 2 --steps-seg 2 --device "${DEVICE:-cuda}" --anomaly-source "$DATA/dtd" > "$OUT/smoke.log" 2>&1; then
  echo "smoke test failed"; tail -40 "$OUT/smoke.log"; exit 3
fi
echo "smoke ok after $(( $(date +%s) - t0 )) s"
$PY -m models.ablation run --data "$DATA" --categories bottle,mtd --variants "$VARIANTS" --out "$W" $EXTRA \
  --jobs "${JOBS:-16}" --device "${DEVICE:-cuda}" --anomaly-source "$DATA/dtd" --deadline "${DEADLINE:-450}" --report "$OUT" \
  --progress-every 60 2>&1 | tee "$OUT/ablation.log"
tar czf "$OUT/runs.tgz" -C "$W" --exclude='*.pt' --exclude='*.tmp' .
echo "total $(( $(date +%s) - t0 )) s"
