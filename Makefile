# Set-up and checks.  `make demo` and `make test` each create .venv and install
# what they need, so both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Exactly this torch: a CPU wheel found locally; a looser spec pulls a CUDA build.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,ray]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/gradcode demo

lint: install
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

test: install lint
	$(PY) -m pytest --doctest-modules src tests

bench: install
	$(PY) bench/decode.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
