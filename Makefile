# `make demo` and `make test` work on a fresh machine: they create .venv, install torch 2.13.0 (CPU wheel)
# first, then plait with a constraint that keeps that torch, so no CUDA package is pulled in.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
	@if $(BIN)/pip list 2>/dev/null | grep -i -E '^(nvidia-|torchvision |timm |torchaudio |torchcodec )'; then \
		echo "error: a CUDA or torchvision-family package got installed (see above); plait must not depend on them"; exit 1; fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/plait demo --folder demo-runs/$$(date +%Y%m%d-%H%M%S)

# one worker per core (pytest-xdist), a test file per worker at a time so module fixtures are built once
test: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadfile --durations=15

test-fast: $(STAMP)
	$(BIN)/pytest -q -n auto --dist loadfile -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/trainer_overhead.py
	$(BIN)/python benchmarks/preprocessing_cache.py
	$(BIN)/python benchmarks/memory_flat.py
	$(BIN)/python benchmarks/ddp_scaling.py
	$(BIN)/python benchmarks/gpu_throughput.py

docs: $(STAMP)
	$(BIN)/python -m plait.docs

clean:
	rm -rf $(VENV) demo-runs .pytest_cache
