# The two commands of the README: `make run` and `make test`. Both create .venv when missing,
# install the project into it (again only when pyproject.toml changed), then do their job.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
OUT    ?= runs/latest
# Test processes at once (pytest-xdist): most of a test's time is framework imports in worker
# processes, which leave a core idle; two keep both cores of a small machine busy.
TEST_JOBS ?= 2

.PHONY: install run test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/onnxparity run --out $(OUT)

test: install
	$(PY) -m pytest -n $(TEST_JOBS) $(PYTEST_ARGS)

bench: install
	$(VENV)/bin/onnxparity bench $(OUT)

clean:
	rm -rf runs .pytest_cache
