# The two commands: `make run` and `make test`. Both install whatever is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: run test install browser lint bench stop clean

install: $(STAMP) $(NODE_STAMP) browser

# The browser tests (admin, Swagger, transparency page) drive Debian's chromium headless. Installed from
# Debian's packages when missing and we may (root with apt-get); otherwise those tests say why they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser tests will skip"; \
	  else echo "chromium is not installed (needs root and apt-get): the browser tests will skip"; fi; }

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@# npm install rather than npm ci: the lockfile can only list the platform binaries the registry
	@# serves here, and npm ci refuses a lockfile missing the optional ones for other platforms.
	npm install --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

run: install
	ISSUER_ENV=development $(PY) -m config.devrun

test: install
	ISSUER_ENV=test $(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

bench: install
	ISSUER_ENV=test $(PY) bench/ledger_append.py
	ISSUER_ENV=test $(PY) bench/reconcile.py
	$(PY) bench/api_load.py

stop:
	$(PY) -m config.embedded stop

clean: stop
	rm -rf .data
