#!/usr/bin/env bash
# The GPU run, in one go and within 8 minutes: every CUDA path of the toolkit on the machine with an
# NVIDIA GPU, every table written into $OUT. Any session that is lent a GPU runs this first.
#
# Here (no GPU needed):
#   onnxparity run --out runs/gpu --n 100              # train (or reuse) and convert both models
#   bash ../shared/gpu/prepare.sh                      # onnxparity-gpu/keras/aiohttp wheels into .whl/
#   bash scripts/gpu_check.sh --dry-run runs/gpu       # checks the inputs, the files and the plan
# There, after ../shared/gpu/README.md's wheel transfers (one ~51 MB part per call, each followed by
# `bash .whl/install.sh`, which keeps what it got in /tmp/whl-parts), one last call carries only
# runs/gpu (about 20 MB: it does not fit beside a part under the 64 MiB a call carries) and runs:
#   bash scripts/gpu_check.sh runs/gpu                 # device tool: timeout_s 540, carry ["runs/gpu"]
#
# Steps, each under its own time limit, all under one deadline (GPU_CHECK_SECONDS, 470 s):
#   1. the wheels installed and sourced; 2. the environment: nvidia-smi, onnxruntime.get_build_info(),
#   providers, torch and CUDA; 3. parity of both reference models (PyTorch and Keras-on-torch on CUDA,
#   ORT CUDA, TensorRT where present) with `--require-devices cuda`, so a broken CUDA setup fails
#   instead of leaving its rows "not run"; 4. the bench on CUDA at batch 1, 64 and 1024 (ORT with I/O
#   binding, plain ORT, torch eager, Keras on torch; no torch.compile, which compiles once per batch
#   size); 5. serve with the CUDA provider under 8 s of load; 6. the int8/fp16 variants: a marked step
#   measured with `onnxparity quantize` (int8 and fp16, fp16 timed on CUDA).
# Files in $OUT (8 at most, the device tool's limit): gpu_check.log (every table), parity-torch.json,
# parity-keras.json, parity-torch.html, parity-keras.html, bench-gpu.json, serve-gpu.json and
# gpu-outputs.tar (the raw outputs: `onnxparity compare cpu-torch.npz gpu-torch.npz` against a CPU run).
# Exit status: 0 every step passed, 1 a step failed (its output says which), 2 bad inputs.
set -uo pipefail

usage() { echo "usage: bash scripts/gpu_check.sh [--dry-run] [RUN_DIR (default runs/gpu)]" >&2; exit 2; }
dry=0
dir=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    -h|--help) usage ;;
    -*) echo "gpu_check: unknown option $arg" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir=$arg ;;
  esac
done
dir=${dir:-runs/gpu}
[ -d "$dir" ] || { echo "gpu_check: error: $dir: no such folder (make it with: onnxparity run --out $dir)" >&2; exit 2; }
dir=$(cd "$dir" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
PY=${PYTHON:-python3}
WHEELS=${GPU_CHECK_WHEELS:-.whl}  # the wheel transfers' folder (../shared/gpu/README.md)
DEADLINE_S=${GPU_CHECK_SECONDS:-470}
MODELS=(torch keras)
# step name -> seconds; their sum must stay under DEADLINE_S (the dry run checks it)
declare -A BUDGET=([install]=40 [environment]=20 [parity]=170 [bench]=150 [serve]=45 [quantize]=40)
STEPS=(install environment parity bench serve quantize)
OUT_FILES=(gpu_check.log parity-torch.json parity-keras.json parity-torch.html parity-keras.html
           bench-gpu.json serve-gpu.json gpu-outputs.tar)

# -- inputs: both models' checkpoints and ONNX files, readable and of the right framework -------------
check_inputs() {
  local bad=0 fw
  for fw in "${MODELS[@]}"; do
    for f in "$dir/$fw/spec.json" "$dir/$fw.onnx"; do
      [ -f "$f" ] || { echo "MISSING  $f" ; bad=1; }
    done
  done
  [ $bad -eq 0 ] || return 2
  PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$dir" "${MODELS[@]}" <<'EOF' || return 2
import sys
from onnxparity.errors import OnnxParityError
from onnxparity.models import resolve
from onnxparity.parity.matrix import onnx_spec

folder, frameworks = sys.argv[1], sys.argv[2:]
bad = False
for fw in frameworks:
    try:
        ref = resolve(f"{folder}/{fw}")
        spec = onnx_spec(f"{folder}/{fw}.onnx")
        if ref.framework != fw or spec.framework != fw:
            raise OnnxParityError(f"expected a {fw} model, found {ref.framework} (ONNX file from {spec.framework})")
        print(f"OK       {fw}: {ref.path.name} and {fw}.onnx ({spec.name}, input {spec.input_shape}, {spec.output})")
    except OnnxParityError as exc:
        print(f"BAD      {fw}: {exc}")
        bad = True
sys.exit(1 if bad else 0)
EOF
}

dry_run() {
  local status=0 total=0 s help
  echo "gpu_check --dry-run: $dir"
  check_inputs || status=2
  for s in "${STEPS[@]}"; do total=$((total + BUDGET[$s])); done
  if [ "$total" -le "$DEADLINE_S" ] && [ "$DEADLINE_S" -le 480 ]; then
    echo "OK       time: steps ${total} s within the deadline ${DEADLINE_S} s (8 minutes: 480 s)"
  else
    echo "BAD      time: steps ${total} s, deadline ${DEADLINE_S} s, limit 480 s"; status=2
  fi
  for want in "check:--require-devices" "bench:--timeout" "bench:--backends" "serve:--providers" "quantize:--fp16"; do
    help=$(PYTHONPATH="$root" "$PY" -m onnxparity "${want%%:*}" --help 2>&1)
    if grep -q -- "${want#*:}" <<<"$help"; then echo "OK       onnxparity ${want%%:*} ${want#*:}"
    else echo "BAD      onnxparity ${want%%:*} has no ${want#*:}"; status=2; fi
  done
  [ -f scripts/load_test.py ] && echo "OK       scripts/load_test.py" || { echo "BAD      scripts/load_test.py missing"; status=2; }
  [ "${#OUT_FILES[@]}" -le 8 ] && echo "OK       $OUT ${#OUT_FILES[@]} files (the device tool returns 8 at most)" \
    || { echo "BAD      ${#OUT_FILES[@]} files in \$OUT, more than 8"; status=2; }
  local mib
  mib=$(du -sm "$dir" | cut -f1)
  [ "$mib" -lt 60 ] && echo "OK       $dir is ${mib} MiB to carry" \
    || { echo "BAD      $dir is ${mib} MiB, too much to carry in one call (64 MiB)"; status=2; }
  if [ -f "$WHEELS/install.sh" ] && [ -f "$WHEELS/ort-gpu.name" ]; then
    read -r name count < "$WHEELS/ort-gpu.name"
    echo "OK       wheels: $name in $count parts, $(ls "$WHEELS"/ort-gpu.part* 2>/dev/null | wc -l) here, $(ls "$WHEELS/extra" 2>/dev/null | wc -l) extra wheels"
  else
    echo "NOTE     wheels: no .whl/ here yet (bash ../shared/gpu/prepare.sh makes it; needed there, not for this check)"
  fi
  echo "plan (each step's time limit):"
  for s in "${STEPS[@]}"; do echo "  $s ${BUDGET[$s]} s"; done
  [ $status -eq 0 ] && echo "dry run: ready" || echo "dry run: NOT ready"
  return $status
}

if [ $dry -eq 1 ]; then
  OUT=${OUT:-$root/gpu-check}
  dry_run
  exit $?
fi

# -- the run, on the GPU machine -------------------------------------------------------------------
OUT=${OUT:-$root/gpu-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
start=$(date +%s)
deadline=$((start + DEADLINE_S))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1 ONNXPARITY_PROGRESS=0 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
declare -A RESULT
failed=0

limit() {  # the step's budget, cut to what is left before the deadline
  local left=$((deadline - $(date +%s)))
  [ "$1" -lt "$left" ] && echo "$1" || echo "$left"
}
begin() { echo; echo "=== $1 (at most $(limit "${BUDGET[$1]}") s; $(( $(date +%s) - start )) s in) ==="; }
finish() {  # step, exit status
  RESULT[$1]=$([ "$2" -eq 0 ] && echo ok || echo "FAILED ($2)")
  [ "$2" -eq 0 ] || failed=1
}
t() {  # run a command under the step's limit
  local secs
  secs=$(limit "$1"); shift
  [ "$secs" -ge 5 ] || { echo "no time left"; return 124; }
  timeout -k 5 "$secs" "$@"
}

check_inputs || { echo "gpu_check: bad inputs in $dir (run the dry run here first)"; exit 2; }

begin install
if [ -f "$WHEELS/install.sh" ]; then
  t "${BUDGET[install]}" bash "$WHEELS/install.sh" && source <(bash "$WHEELS/install.sh" --env)
  finish install $?
else
  echo "no $WHEELS/install.sh here: using the Python packages as they are"; finish install 0
fi

begin environment
smi=$(command -v nvidia-smi || ls /usr/local/nvidia/bin/nvidia-smi 2>/dev/null)
if [ -n "$smi" ]; then t "${BUDGET[environment]}" "$smi"; else echo "nvidia-smi: not found"; fi
t "${BUDGET[environment]}" "$PY" - <<'EOF'
import importlib.metadata as md
import torch  # first: its CUDA libraries for ORT's provider
import onnxruntime as ort
print("onnxruntime", ort.__version__, "| build info:", ort.get_build_info())
print("providers:", ort.get_available_providers())
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| available", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
for dist in ("onnxruntime-gpu", "keras", "tensorflow", "aiohttp", "rich"):
    try:
        print(dist, md.version(dist))
    except md.PackageNotFoundError:
        print(dist, "not installed")
from onnxparity.machine import nvidia_gpus
print("onnxparity sees:", nvidia_gpus())
EOF
finish environment $?

begin parity
pids=()
for fw in "${MODELS[@]}"; do
  t "${BUDGET[parity]}" "$PY" -m onnxparity check "$dir/$fw" "$dir/$fw.onnx" --n 2000 --require-devices cuda \
      --timeout 150 --json "$OUT/parity-$fw.json" --html "$OUT/parity-$fw.html" \
      --save-outputs "$work/gpu-$fw.npz" > "$work/parity-$fw.txt" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || status=$?
  echo "--- parity ${MODELS[$i]}"; cat "$work/parity-${MODELS[$i]}.txt"
done
finish parity $status

begin bench
t "${BUDGET[bench]}" "$PY" -m onnxparity bench "$dir" --devices cuda --batch-sizes 1,64,1024 \
    --backends onnxruntime,onnxruntime.default,torch.eager,keras.call --rounds 5 --round-time 0.1 --warmup 0.3 \
    --timeout 60 --json "$OUT/bench-gpu.json" --markdown &&
"$PY" -c 'import json, sys; rows = json.load(open(sys.argv[1]))["results"]
sys.exit(0 if any(r["device"] == "cuda" for r in rows) else "bench: no CUDA row was measured (see not measured)")' \
    "$OUT/bench-gpu.json"
finish bench $?

begin serve
t 30 "$PY" - "$dir" <<'EOF' &&
import sys
from onnxparity.errors import OnnxParityError
from onnxparity.serve import load_models
try:  # the sessions the server will make, so a CUDA provider that does not start says why here
    models = load_models(sys.argv[1], ["cuda"])
except OnnxParityError as exc:
    sys.exit(f"serve cannot use CUDA: {exc}")
print("serving on:", {name: m.session.get_providers()[0] for name, m in models.items()})
EOF
t "${BUDGET[serve]}" "$PY" scripts/load_test.py "$dir" --modes on --duration 8 --concurrency 32 --client python \
    --server-args "--providers cuda --workers 4" --json "$OUT/serve-gpu.json"
finish serve $?

begin quantize
# int8 and fp16 variants of the PyTorch Net, gated by parity on held-out digits; quantize times both
# files on CPU and, for fp16, on CUDA. Reports go to the log (the files back from $OUT are limited).
if "$PY" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  status=0
  for mode in int8 fp16; do
    t "${BUDGET[quantize]}" "$PY" -m onnxparity quantize "$dir/torch.onnx" "--$mode" -o "$work/torch.$mode.onnx" \
        --json "$work/quantize-$mode.json" || status=$?
    [ -f "$work/quantize-$mode.json" ] && cat "$work/quantize-$mode.json"
  done
  finish quantize $status
else
  echo "FAILED: this onnxruntime has no CUDAExecutionProvider: the variants' GPU figures cannot be measured"
  finish quantize 1
fi

echo; echo "=== summary ($(( $(date +%s) - start )) s) ==="
for s in "${STEPS[@]}"; do printf '  %-12s %s\n' "$s" "${RESULT[$s]:-not run}"; done
(cd "$work" && tar -cf "$OUT/gpu-outputs.tar" ./*.npz 2>/dev/null) || true
exit $failed
