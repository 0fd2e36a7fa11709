# The two commands a newcomer needs: `make demo` and `make test`.
# Both do their own set-up: system packages (apt, with sudo when not root),
# the .venv and its Python packages.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench setup setup-test clean

$(STAMP): requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $(STAMP)

setup: $(STAMP)
	tools/install-system-deps.sh

setup-test: $(STAMP)
	tools/install-system-deps.sh --test

demo: setup
	$(PY) -m tools.demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m tools.lint
	$(PY) -m tools.compile_firmware

test: setup-test lint
	$(PY) -m pytest

bench: setup
	@echo "no benchmarks yet"

clean:
	rm -rf .run build
