#!/usr/bin/env bash
# Mutation testing of onnxparity/compare/ and the input code against their fast NumPy-only tests
# (docs/parity.md): mutmut changes one thing at a time in each function of the files that
# [tool.mutmut] in pyproject.toml names, runs the tests that call it, and reports every mutant
# no test noticed. mutmut comes with the `mutation` extra: pip install -e '.[mutation]'.
#   bash scripts/mutation.sh            # about 10 minutes on 2 cores, at the lowest priority
# It works in mutants/ (git ignores it), prints the counts, then each mutant left alive; read one
# with `mutmut show NAME`.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(dirname "${PYTHON:-.venv/bin/python}")
rm -rf mutants  # from scratch: mutmut keeps earlier results and would skip what they cover
mkdir mutants
nice -n 19 "$bin/mutmut" run --max-children "${JOBS:-2}" > mutants/run.log 2>&1 || { tail -c 2000 mutants/run.log; exit 1; }
"$bin/mutmut" export-cicd-stats > /dev/null
cat mutants/mutmut-cicd-stats.json
"$bin/mutmut" results
