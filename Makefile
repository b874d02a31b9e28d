# pi-cluster: offline render, tests and checks. Everything runs from venv/ (created on demand).
VENV   ?= venv
SCAN_VENV ?= .scan-venv
PY     := $(VENV)/bin/python
STACK  ?= pi-k3s

.PHONY: render test lint typecheck pytest bench bench-lists clean scan capacity

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

## render: the whole stack under the SDK's mocks -> rendered/ (no cluster, no credentials)
render: $(VENV)/.runtime
	$(PY) -m tools.render --stack $(STACK)

## test: lint, format check, type check and the test suite
test: lint typecheck pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy components config policy

pytest: $(VENV)/.dev
	$(PY) -m pytest -q

## scan: checkov over the rendered manifests (own venv; waivers are annotations on the objects)
$(SCAN_VENV)/.checkov: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-scan.txt
	touch $@

scan: $(SCAN_VENV)/.checkov render
	$(SCAN_VENV)/bin/checkov -d rendered/manifests --skip-download --framework kubernetes \
	  --compact --quiet

## capacity: per node, what the stack requests and limits against what it has
capacity: $(VENV)/.runtime
	$(PY) -m tools.capacity --stack $(STACK)

## bench: render cost against importing the SDKs (medians of several runs)
bench: $(VENV)/.runtime
	$(PY) bench/render_bench.py
	$(PY) bench/retention_bench.py

## bench-lists: API calls and wall time of one Pi-hole list reconciler run (fake API on 127.0.0.1)
bench-lists: $(VENV)/.runtime
	$(PY) bench/pihole_lists_bench.py

clean:
	rm -rf rendered .pytest_cache .mypy_cache .ruff_cache

# --- e2e: the real engine against a simulated cluster (e2e/tools/README.md) -------------------
.PHONY: e2e-tools e2e-cluster-smoke e2e-clean

## e2e-tools: the pinned Pulumi CLI, plugins, control plane, etcd, kwok, kubectl, helm
## (from PATH at the pinned version, else built once into e2e/.cache; a second run builds nothing)
e2e-tools: $(VENV)/.dev
	python3 -m e2e.tools.build --python $(PY)

## e2e-cluster-smoke: etcd + control plane + kwok on 127.0.0.1, one fake Node Ready, stopped
e2e-cluster-smoke: e2e-tools
	python3 -m e2e.cluster smoke

e2e-clean:
	rm -rf e2e/.cache

# --- delivery (CI and deploy notices) ---------------------------------------------------------
.PHONY: ci-tools render-diff notify
BASE_RENDERED ?= ../base/rendered

## ci-tools: install the validators the tests require (Debian tools, Renovate's validator)
ci-tools:
	.ci/install-tools

## render-diff: rendered/ against BASE_RENDERED as Markdown ($GITHUB_STEP_SUMMARY in CI)
render-diff: $(VENV)/.runtime
	$(PY) -m tools.render_diff --base $(BASE_RENDERED) --head rendered

## notify: Discord notice of the last deploy (deploy.yml; parameters from the environment)
notify: $(VENV)/.runtime
	$(PY) -m tools.notify
