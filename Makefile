# The two commands a newcomer needs (see README):
#   make demo   set up, start a local control plane, run the operator, mint and show a token
#   make test   set up and run every test against a real local control plane, and the
#               end-to-end tier on a real node where one can run (root, cgroups)
# Each sets itself up idempotently: virtualenv, pip install, control-plane and node builds (cached).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit fuzz fuzz-faults fuzz-inputs setup controlplane node crds chart-docs lint image lock

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

setup: $(STAMP)

controlplane: setup
	$(BIN)/tokenwarden-dev build-controlplane

# The node for `dev-cluster --node` and tests/e2e: Debian packages, kubelet and friends,
# CoreDNS, the pause and product images (cached; says why and builds nothing without root).
node: controlplane
	$(BIN)/tokenwarden-dev build-node

# The demo builds (once) only what it runs: etcd, kube-apiserver, kube-controller-manager; not the
# tools the tests need (helm, promtool, the dashboard checker).
demo: setup
	$(BIN)/tokenwarden demo

# The tiers run side by side in TEST_PROCESSES processes (pytest-xdist; tests/support_tiers.py
# says how they are grouped), and the run ends with each tier's time against its budget.
TEST_PROCESSES ?= 4
test: controlplane node
	$(BIN)/python -m pytest tests -n $(TEST_PROCESSES) --dist loadgroup

unit: setup
	$(BIN)/python -m pytest tests/unit -n $(TEST_PROCESSES) --dist loadgroup

# Exploration, never part of `make test` (which draws nothing at random): `make fuzz` runs both
# explorers below.
fuzz: fuzz-inputs fuzz-faults

# The randomised fault test, exploring (`make test` runs its fixed seeds only): it draws new seeds until FUZZ_TIME is up and prints a replay line for each seed that breaks
# an invariant; such a seed joins FIXED_SEEDS in tests/integration/test_faults.py.
FUZZ_TIME ?= 60m

fuzz-faults: controlplane
	$(BIN)/python -m pytest tests/integration/test_faults.py --fault-seed random --fault-explore $(FUZZ_TIME) \
	  --timeout 0 -p no:cacheprovider -s

# The fuzz tier (tests/fuzz), exploring: random inputs, FUZZ_EXAMPLES per test, failures kept in
# .hypothesis/ and tried first next time. `make test` runs the same tests derandomized, 150
# examples each (about 5 s). A failure found here becomes a plain regression test.
FUZZ_EXAMPLES ?= 20000

fuzz-inputs: setup
	HYPOTHESIS_PROFILE=explore FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/fuzz \
	  --hypothesis-show-statistics

crds: setup
	$(BIN)/python -m tokenwarden.api

# The chart's README (values table) and values.schema.json's descriptions, from values.yaml's comments.
chart-docs: setup
	$(BIN)/python -m tokenwarden.chartdocs

lint: setup
	$(BIN)/lint-imports

# The product image, built from the Dockerfile with buildah (no Docker engine): on a local
# Debian bookworm base made with mmdebstrap, because the public python base needs a
# registry; IMAGE_BASE=default builds on the Dockerfile's own BASE_IMAGE instead.
# Installs buildah and mmdebstrap with apt-get when missing (as root); prints size and time.
IMAGE_TAG  ?= tokenwarden:dev
IMAGE_BASE ?= local

image: setup
	$(BIN)/tokenwarden-dev build-image --tag $(IMAGE_TAG) --base $(IMAGE_BASE)

# requirements.lock pins the image's dependencies with hashes (python 3.11, linux x86_64):
# pyproject's runtime dependencies plus its build-system requirements, which build
# tokenwarden itself in the image. Run after changing dependencies; commit the result.
UV_VERSION := 0.13.9

lock: setup
	$(BIN)/pip install --quiet 'uv==$(UV_VERSION)'
	$(BIN)/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))' \
	  | $(BIN)/uv pip compile pyproject.toml - --quiet --generate-hashes --python-version 3.11 \
	      --python-platform x86_64-unknown-linux-gnu --custom-compile-command 'make lock' \
	      --output-file requirements.lock
