# The two commands a newcomer needs: `make demo` and `make test`.
# Both do their own set-up: system packages (apt, with sudo when not root),
# the .venv and its Python packages, the Node packages of package.json.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

.PHONY: demo test test-postgres lint bench setup setup-test system-deps system-deps-test clean

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $(STAMP)

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	mkdir -p node_modules
	touch $(NODE_STAMP)

# System packages first: npm itself may come from apt on a fresh machine.
system-deps:
	tools/install-system-deps.sh

system-deps-test:
	tools/install-system-deps.sh --test

setup: system-deps $(STAMP) $(NODE_STAMP)

setup-test: system-deps-test $(STAMP) $(NODE_STAMP)

demo: setup
	$(PY) -m tools.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m tools.lint
	$(PY) -m tools.import_cycles
	$(PY) -m tools.compile_firmware
	$(PY) tests/firmware/test_fw_typecheck.py

# Two workers (pytest-xdist): about half the wall time on this 2-core machine.
TEST_WORKERS ?= 2

test: setup-test lint
	$(PY) -m pytest -n $(TEST_WORKERS)

# The same suite with the fleet on a real PostgreSQL (a cluster of our own, started and stopped by the tests).
test-postgres: setup-test lint
	FLEET_TEST_POSTGRES=1 $(PY) -m pytest -n $(TEST_WORKERS)

# What CI runs after `make test`: only the tests whose fleet database follows FLEET_TEST_POSTGRES (marker
# fleet_database, see tests/conftest.py), now on PostgreSQL; the rest would repeat `make test`.
.PHONY: test-fleet-postgres
test-fleet-postgres: setup-test
	FLEET_TEST_POSTGRES=1 $(PY) -m pytest -n $(TEST_WORKERS) -m fleet_database

# The suite with the clock at 16:30 UTC, 00:30 in Beijing: the fleet's "today" has just changed there, and a
# test that takes its day from the wall clock fails. Not part of `make test` (it is the suite once more).
# Debian's faketime sets the clock of every process; why these settings: tests/README.md. A part:
# `make test-clock CLOCK_TESTS=tests/fleet`, another moment: `make test-clock CLOCK_AT='2026-12-04 00:29:00 UTC'`.
CLOCK_AT ?= $(shell date -u +%F) 16:30:00 UTC
CLOCK_TESTS ?=
.PHONY: test-clock
test-clock: setup-test
	FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_SKIP_CMDS=postgres,initdb,pg_ctl,createdb \
	PYTHONPATH=$(CURDIR)/tests/support/faketime$${PYTHONPATH:+:$$PYTHONPATH} \
	faketime '$(CLOCK_AT)' $(PY) -m pytest -n $(TEST_WORKERS) $(CLOCK_TESTS)

# The edge agent's Debian package for Raspberry Pi OS (packaging/pi/): build/deb/service-center-edge_<v>_all.deb.
# WHEELS=1 puts the arm64 wheels into it, for a Pi without internet.
WHEELS ?=
.PHONY: deb
deb:
	python3 -m tools.build_deb $(if $(WHEELS),--wheels)

bench: setup
	@for script in bench/*.py; do [ -e "$$script" ] || continue; echo "== $$script"; $(PY) $$script || exit 1; done
	@if [ -n "$(NATIONAL)" ]; then echo "== bench/fleet_overview.py --national"; $(PY) bench/fleet_overview.py --national; fi

clean:
	rm -rf .run build node_modules
