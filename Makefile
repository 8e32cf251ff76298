# Quickstart: `make demo` (run the quickstart study) and `make test` (run the test suite).
# Both create .venv when it is missing. torch is pinned here only to take the local wheel fast;
# pyproject.toml keeps ranges.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e '.[dev,postgres,redis]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/nasdepth run studies/quickstart.yaml

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check nasdepth tests benchmarks
	$(BIN)/mypy nasdepth

clean:
	rm -rf $(VENV) reports/*/ studies/*.journal studies/*.db
