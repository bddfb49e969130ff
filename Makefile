# Two entry points for a fresh machine (see README):
#   make demo   install, then train a small RBM on MNIST with VPF and draw its filters and samples
#   make test   install with the test extras, then run the test suite
PYTHON ?= python3.12
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,bench]"

demo: install
	$(BIN)/vpf demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/rbm_epoch.py
