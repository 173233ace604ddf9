# The two commands: `make run` and `make test`. Both install whatever is missing first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp

.PHONY: run test install browser lint bench stop clean

install: $(STAMP) $(NODE_STAMP) browser

# The browser tests (admin, Swagger, transparency page, screenshots) drive Debian's chromium headless, some
# through chromedriver. Installed from Debian's packages when missing and we may (root with apt-get);
# otherwise those tests say why they skip.
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null 2>&1; } || \
	    echo "could not install chromium: the browser tests will skip"; \
	  else echo "chromium and chromium-driver are not installed (needs root and apt-get): the browser tests will skip"; fi; }

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

$(NODE_STAMP): package.json package-lock.json
	@# npm ci: exactly the lockfile, never a rewrite of it. The lockfile lists every platform's anvil
	@# binary (the optional @foundry-rs/anvil-<os>-<cpu> packages, all served by the registry), so npm ci
	@# installs the one this machine needs and leaves package-lock.json as committed. After a change to
	@# package.json, regenerate the lockfile with `npm install --package-lock-only` and commit it.
	@# A node_modules that is a symlink (a second worktree borrowing the main checkout's packages) is left to
	@# its owner: npm ci empties the directory a link points to before replacing the link.
	@if [ -L node_modules ]; then echo "node_modules links to $$(readlink node_modules): not reinstalled here"; \
	else npm ci --no-audit --no-fund --loglevel=error; fi
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
	$(PY) bench/chain_throughput.py --chain evm
	$(PY) bench/chain_throughput.py --chain solana
	ISSUER_ENV=test $(PY) bench/attestation.py

stop:
	$(PY) -m config.embedded stop

clean: stop
	rm -rf .data
