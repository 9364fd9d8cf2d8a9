#!/usr/bin/env bash
# The GPU parity check alone (scripts/gpu_check.sh runs it with the bench and serving), in one go, on the machine with an NVIDIA GPU (see ../shared/gpu/README.md).
# Train and convert here first (`onnxparity run --out runs/latest`), bring runs/latest along, and
# carry the onnxruntime-gpu/keras wheel parts in .whl/ as that README says; then, on that machine:
#   bash scripts/gpu_parity.sh runs/latest
# It prints both models' tables (PyTorch on CUDA, Keras on the torch backend on CUDA, ORT CUDA and
# TensorRT, against the CPU originals; TensorFlow is absent there, so Keras' CPU reference is Keras
# on torch's CPU) and writes gpu-<model>.json/.npz into $OUT (or .). Compare with a CPU run here:
#   onnxparity compare cpu-torch.npz gpu-torch.npz
set -o pipefail
dir=${1:-runs/latest}
out=${OUT:-.}
bash .whl/install.sh || exit 2
source <(bash .whl/install.sh --env) || exit 2
export PYTHONUNBUFFERED=1
python3 -c "import onnxruntime as o, torch; print('ORT', o.__version__, o.get_available_providers(), '| torch', torch.__version__, torch.cuda.is_available())"
status=0
for fw in torch keras; do
  python3 -m onnxparity check "$dir/$fw" "$dir/$fw.onnx" --n 2000 --require-devices cuda --json "$out/gpu-$fw.json" \
      --save-outputs "$out/gpu-$fw.npz" || status=$?
done
exit $status
