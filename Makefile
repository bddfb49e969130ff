# Two entry points for a fresh machine (see README):
#   make demo   install the package, then train a small RBM on MNIST with VPF and draw its filters and samples
#   make test   install with the test extras, then run the test suite
PYTHON ?= python3.12
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install install-core

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# the demo needs only the package; the tests and benchmarks add pytest, scikit-learn, dask...
install-core: $(BIN)/python
	$(BIN)/python -m pip install -q -e .

install: $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,bench]"

demo: install-core
	$(BIN)/vpf demo

test: install
	$(BIN)/python -m pytest -q -n 2 --durations=15

bench: install
	$(BIN)/python benchmarks/rbm_epoch.py
