# tazlab.resilience: everything a fresh machine needs, from the project's own files.
#   make demo   the main job on the lab twin
#   make test   every test phase (this is what .ci/run calls)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# The first Python >= 3.12 that really runs (a pyenv shim for a version not selected does not).
PYTHON ?= $(shell for p in /root/.pyenv/versions/3.12.1/bin/python3 python3.12 python3.13 python3; do \
  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$p; break; }; done)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
CACHE := $(CURDIR)/.cache
ANSIBLE_BUNDLE := ansible==14.5.0
export PATH := $(BIN):$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/collections:$(CACHE)/collections
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: help venv tools demo demo-auto java-check test sanity units lint changelog-lint integration molecule build lock clean
help:
	@echo "make demo    run the main job (dr_recover) on the lab twin"
	@echo "make demo-auto  the same with nobody typing: ansible-rulebook (tazlab.resilience.auto_recover) recovers"
	@echo "make test    run every test phase: sanity, units, lint, changelog-lint, integration, molecule"
	@echo "make <phase> run one phase; make build builds the collection tarball"

$(BIN)/.stamp: requirements-dev.txt lab/pyproject.toml
	@echo "== venv: $(VENV) with $(PYTHON)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e lab
	mkdir -p collections/ansible_collections/tazlab
	ln -sfn ../../.. collections/ansible_collections/tazlab/resilience
	touch $@

# Collections we test against (kubernetes.core for baselines) come from the PyPI `ansible` bundle:
# Galaxy is not reachable. Only the folders we need are unpacked, into the gitignored cache.
$(CACHE)/collections/.stamp: $(BIN)/.stamp
	@echo "== third-party collections from the PyPI bundle $(ANSIBLE_BUNDLE)"
	mkdir -p $(CACHE)/dl $(CACHE)/collections
	$(BIN)/python -m pip download -q --no-deps -d $(CACHE)/dl $(ANSIBLE_BUNDLE)
	cd $(CACHE)/collections && $(BIN)/python -m zipfile -e $(CACHE)/dl/ansible-14.5.0-py3-none-any.whl . >/dev/null 2>&1 || true
	cd $(CACHE)/collections && find . -mindepth 1 -maxdepth 1 ! -name ansible_collections ! -name .stamp -exec rm -rf {} +
	cd $(CACHE)/collections/ansible_collections && find . -mindepth 1 -maxdepth 1 ! -name kubernetes ! -name community -exec rm -rf {} +
	cd $(CACHE)/collections/ansible_collections/community && find . -mindepth 1 -maxdepth 1 ! -name proxmox -exec rm -rf {} +
	touch $@

# Real third-party clients for the twin's fidelity tests: kubectl 1.20 from Debian (extracted, not
# installed) and the fence_pve agent (Debian package fence-agents); headless Chromium (Debian package
# chromium) renders the timeline picture in a test.
$(CACHE)/tools/.stamp:
	@echo "== real clients: kubectl 1.20 (Debian kubernetes-client, extracted), fence-agents and chromium"
	mkdir -p $(CACHE)/tools
	if [ "$$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; fi
	cd $(CACHE)/tools && rm -f kubernetes-client_*.deb && apt-get download -qq kubernetes-client && dpkg-deb -x kubernetes-client_*.deb kubectl-1.20
	if ! command -v fence_pve >/dev/null && [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fence-agents >/dev/null; fi
	if ! command -v chromium >/dev/null && [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi
	touch $@

venv: $(BIN)/.stamp $(CACHE)/collections/.stamp
tools: $(CACHE)/tools/.stamp

demo: venv
	@echo "== demo: the main job on the lab twin"
	$(BIN)/python scripts/demo.py

# ansible-rulebook (pinned in requirements-dev.txt) runs its rule engine in a JVM: Java >= 17.
java-check: venv
	@$(BIN)/python scripts/eda_lab.py java

demo-auto: venv java-check
	@echo "== demo-auto: recovery with no human (Event-Driven Ansible) on the lab twin"
	$(BIN)/python scripts/demo_auto.py

test: venv tools
	$(MAKE) --no-print-directory --keep-going sanity units lint changelog-lint integration molecule
	@echo "== all test phases passed"

sanity: venv
	@echo "== sanity: ansible-test sanity (offline, staged copy of the collection)"
	scripts/ansible-test.sh sanity --venv --python 3.12 --color no

units: venv
	@echo "== units: pytest tests/unit"
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

lint: venv
	@echo "== lint: ansible-lint --profile production"
	$(BIN)/ansible-lint --profile production

changelog-lint: venv
	@echo "== changelog-lint: antsibull-changelog lint"
	$(BIN)/antsibull-changelog lint

integration: venv tools java-check
	@echo "== integration: the lab twin and the collection against it (pytest lab/tests tests/integration)"
	KUBECTL_120=$(CACHE)/tools/kubectl-1.20/usr/bin/kubectl $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 lab/tests tests/integration

molecule: venv
	@echo "== molecule: molecule test --all (scenarios in extensions/molecule, run from the collection root)"
	$(BIN)/molecule test --all

build: venv
	mkdir -p dist
	$(BIN)/ansible-galaxy collection build --force --output-path dist .

lock:
	rm -rf $(CACHE)/lockvenv && $(PYTHON) -m venv $(CACHE)/lockvenv
	$(CACHE)/lockvenv/bin/pip install -q -r requirements-dev.in
	{ echo "# Generated by 'make lock' from requirements-dev.in: the one place where versions are pinned."; \
	  $(CACHE)/lockvenv/bin/pip freeze | sort -f; } > requirements-dev.txt

# The Talos protobuf messages (plugins/module_utils/talos/pb) from proto/*.proto, with grpcio-tools' protoc.
.PHONY: proto
proto: venv
	$(BIN)/python proto/generate.py

clean:
	rm -rf $(VENV) $(CACHE) collections tests/output dist
