# Two commands matter: `make demo` and `make test`. Both set up everything they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test test-faults test-unit check stop kafka-start kafka-stop schema dashboards clean

venv: $(VENV)/.installed

# constraints.txt pins every transitive version, so CI installs what was tested.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

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
# install.sh adds Debian's prometheus (and promtool, amtool) when missing.
test: venv
	bash deploy/prometheus/install.sh
	$(BIN)/python -m pytest -q

# Only the fault-injection and hostile-input tests (docs/reliability.md); make test runs them too.
test-faults: venv
	$(BIN)/python -m pytest -q -m faults

test-unit: venv
	$(BIN)/python -m pytest -q -m unit

check: venv
	$(BIN)/ruff check tracker tests
	$(BIN)/ruff format --check tracker tests
	$(BIN)/mypy tracker

clean: stop
	rm -rf .tracker
