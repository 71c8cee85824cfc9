# The two commands a newcomer needs (see README):
#   make demo   set up, start a local control plane, run the operator, mint and show a token
#   make test   set up and run every test against a real local control plane
# Each sets itself up idempotently: virtualenv, pip install, control-plane build (cached).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit setup controlplane crds lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

controlplane: setup
	$(BIN)/tokenwarden build-controlplane

demo: controlplane
	$(BIN)/tokenwarden demo

test: controlplane
	$(BIN)/python -m pytest tests

unit: setup
	$(BIN)/python -m pytest tests/unit

crds: setup
	$(BIN)/python -m tokenwarden.api

lint: setup
	$(BIN)/lint-imports
