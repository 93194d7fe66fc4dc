# Two commands matter: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test test-faults test-unit check stop kafka-start kafka-stop schema dashboards screenshots clean

# The page's charting library, vendored from the npm registry (tracker/page/library.json pins it).
PAGE_LIBRARY := tracker/page/static/vendor/chart.umd.min.js

venv: $(VENV)/.installed $(PAGE_LIBRARY)

# constraints.txt pins every transitive version, so CI installs what was tested.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# npm fetches the pinned tarball; vendor.mjs checks its sha512 before copying the bundle out.
$(PAGE_LIBRARY): tracker/page/library.json deploy/page/vendor.mjs
	node deploy/page/vendor.mjs

demo: venv
	$(BIN)/tracker demo

stop: venv
	$(BIN)/tracker demo --stop

kafka-start: venv
	$(BIN)/tracker kafka start

kafka-stop: venv
	$(BIN)/tracker kafka stop

schema: venv
	$(BIN)/tracker schema

dashboards: venv
	$(BIN)/python -m tracker.monitoring

# The suite starts its own Kafka broker and Prometheus on free loopback ports;
# install.sh adds Debian's prometheus (and promtool, amtool) when missing, and
# install-chromium.sh Debian's chromium, which the page tests drive headless.
test: venv
	bash deploy/prometheus/install.sh
	bash deploy/page/install-chromium.sh
	$(BIN)/python -m pytest -q

# Only the fault-injection and hostile-input tests (docs/reliability.md); make test runs them too.
test-faults: venv
	$(BIN)/python -m pytest -q -m faults

# The page tests, saving the README's screenshots of the page under docs/.
screenshots: venv
	bash deploy/page/install-chromium.sh
	TRACKER_PAGE_SCREENSHOTS=docs $(BIN)/python -m pytest -q tests/integration/test_page.py

test-unit: venv
	$(BIN)/python -m pytest -q -m unit

check: venv
	$(BIN)/ruff check tracker tests
	$(BIN)/ruff format --check tracker tests
	$(BIN)/mypy tracker
	$(BIN)/lint-imports

clean: stop
	rm -rf .tracker
