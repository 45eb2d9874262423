# miniorch — `make up` and `make test` work as the first command on a fresh machine:
# they install what they need (Debian packages when root, the venv, pip packages).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEB_PACKAGES := busybox-static iproute2 util-linux procps curl docker-registry skopeo apache2-utils wrk
# the dashboard's browser tests drive Debian's Chromium
DEB_PACKAGES += chromium
# the network bench compares the Service proxy with nginx and HAProxy over the same pods
DEB_PACKAGES += nginx-light haproxy
# the sandbox tests compare a pod's privileges with podman's (runc), the reference runtime
DEB_PACKAGES += podman runc libseccomp2
WEB    := miniorch/dashboard/web

.PHONY: install up down test test-fast bench lint clean-state

install: $(STAMP)

$(STAMP): pyproject.toml $(WEB)/package-lock.json
	@bash scripts/install-system-deps.sh $(DEB_PACKAGES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv unavailable; installing python3-venv"; \
	  apt-get install -y -qq python3-venv >/dev/null && $(PYTHON) -m venv $(VENV); }
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev]'
	@# kopf's examples and e2e suite (run unchanged by ours) are only in its source archive.
	@bash scripts/install-kopf-suite.sh $(PY) $(VENV)
	@# The dashboard's JavaScript, exactly as the lockfile pins it (served from node_modules).
	@# npm usually comes with Node.js (often not from Debian): Debian's only if it is missing.
	@command -v npm >/dev/null || bash scripts/install-system-deps.sh nodejs npm
	@cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error >/dev/null
	@touch $(STAMP)

up: install
	$(PY) -m miniorch up

down: install
	$(PY) -m miniorch down

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m 'not e2e'

bench: install
	$(PY) -m bench.run

lint: install
	$(VENV)/bin/ruff check miniorch tests sample_app bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
