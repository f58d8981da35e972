# `make demo` and `make test` work on a fresh machine: they create .venv and install exactly the versions in
# requirements.lock (what CI tested; torch 2.13.0's CPU wheel, so no CUDA package is pulled in), then plait itself.
# `make lock` refreshes the lock from pyproject.toml's ranges (pip-tools, in its own .venv-lock).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock demo serve-demo test test-fast bench docs docs-serve clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/pip check
	@if $(BIN)/pip list 2>/dev/null | grep -i -E '^(nvidia-|torchvision |timm |torchaudio |torchcodec )'; then \
		echo "error: a CUDA or torchvision-family package got installed (see above); plait must not depend on them"; exit 1; fi
	touch $(STAMP)

# pip-compile, not uv: it resolves with pip, so it sees the CPU torch wheel pip finds here (uv looks only at the
# index and would pin a CUDA build). Run it after changing a dependency in pyproject.toml or constraints.txt.
lock:
	test -x .venv-lock/bin/pip-compile || ($(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q pip-tools)
	.venv-lock/bin/pip-compile --quiet --extra test --extra docs -c constraints.txt --strip-extras --no-emit-find-links \
		--no-emit-index-url --output-file requirements.lock pyproject.toml

demo: $(STAMP)
	$(BIN)/plait demo --folder demo-runs/$$(date +%Y%m%d-%H%M%S)

# the newest `make demo` run behind `plait serve`: open http://127.0.0.1:8000/
serve-demo: $(STAMP)
	$(BIN)/plait serve $$(ls -d demo-runs/*/run | tail -1)

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

# the documentation site in site/ (MkDocs Material); --strict: a broken link or anchor, a page missing from the
# navigation, an unknown reference marker or a missing included file fails the build (CI runs it)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	@echo "site/index.html"

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict

clean:
	rm -rf $(VENV) .venv-lock demo-runs .pytest_cache site
