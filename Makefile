# Two commands a user needs: `make demo` and `make test`.
# Both create .venv on first use and install the package with its pinned
# dependencies (torch 2.14.1 + torchaudio 2.11.0 + speechbrain 1.1.2).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS ?= test,ssl,metrics,export,shards,perceptual

.PHONY: venv demo test test-fast bench clean-venv

$(STAMP): setup.py speechbrain_dyncp/streaming/dyncp_frame.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/dyncp demo --out results/demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_dyncp.py --out benchmarks/results/dyncp.json

clean-venv:
	rm -rf $(VENV)
