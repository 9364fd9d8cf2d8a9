#!/usr/bin/env bash
# The figures in docs/migrate.md: migrate's wall time per case, each leg's max abs diff on the
# official 10,000 test digits, and accuracy before and after one more epoch in the new framework.
#   bash scripts/migrate_measure.sh RUNS T10K [OUT]
# RUNS holds checkpoint folders keras/ and torch/ (`onnxparity train keras|torch --out RUNS/...`);
# T10K is an IDX folder with the t10k pair (measuring only). The resnet18 and two-output Keras
# cases are built with random weights by tests/migrate_helpers.py.
set -u -o pipefail
runs=${1:?RUNS folder with keras/ and torch/}
t10k=${2:?IDX folder with the t10k digits}
out=${3:-$(mktemp -d)}
py=${PYTHON:-python3}
mkdir -p "$out"
echo "cpu flags: $(grep -o -w -E 'avx2|avx512f|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
$py -c "import sys; sys.path.insert(0, '.'); from tests import migrate_helpers as m; m.save_resnet18('$out/src-resnet18')"
$py -c "import sys; sys.path.insert(0, '.'); from tests import migrate_helpers as m; m.save_two_output_keras('$out/src-two-heads')"
summary='import json, sys
d = json.load(open(sys.argv[1]))
legs = "; ".join("%s -> %s %.2e" % (l["a"], l["b"], l["max_abs_diff"]) for l in d["legs"])
acc = ", ".join("%s %.4f" % kv for kv in d["accuracy"].items())
print("%s: %.1f s on %s: %s%s" % (sys.argv[2], d["seconds"], d["inputs"], legs, "; accuracy " + acc if acc else ""))'
run() {  # name source target [check-data]
  local data=()
  [ -n "${4:-}" ] && data=(--check-data "$4")
  $py -m onnxparity migrate "$2" --to "$3" -o "$out/$1" "${data[@]}" --json > "$out/$1.json" || return
  $py -c "$summary" "$out/$1.json" "$1"
}
run keras-in-torch "$runs/keras" torch "$t10k"
run torch-in-keras "$runs/torch" keras "$t10k"
run two-heads-in-torch "$out/src-two-heads" torch "$t10k"
run resnet18-in-keras "$out/src-resnet18" keras
for m in keras-in-torch torch-in-keras; do
  $py -m onnxparity train --from "$out/$m" --epochs 1 --out "$out/$m-1" --json > /dev/null || continue
  echo "$m, one more epoch: $($py -m onnxparity evaluate "$out/$m-1" --data "$t10k" --json)"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
