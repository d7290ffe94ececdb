# `make run` and `make test` do all the set-up on a new machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PILLOW_SIMD := pillow-simd==12.1.1.post0
# AVX2 paths of Pillow-SIMD's resize, where the CPU has them.
SIMD_CC := $(shell grep -q avx2 /proc/cpuinfo 2>/dev/null && echo "cc -mavx2" || echo cc)

.PHONY: run cluster test lint typecheck unit unit-sharded bench install clean

$(STAMP): requirements.txt requirements-dev.txt setup.cfg deploy/system-packages.sh Makefile
	bash deploy/system-packages.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -r requirements.txt -r requirements-dev.txt
	# Pillow-SIMD is built from source; packages that require "pillow"
	# go in with --no-deps so plain Pillow never replaces it.
	CC="$(SIMD_CC)" $(PIP) install -q --no-binary pillow-simd $(PILLOW_SIMD)
	$(PIP) install -q --no-deps pillow-heif==1.8.1 blurhash==1.1.5
	$(PIP) install -q --no-deps -e .
	$(PY) -c "import PIL; assert '.post' in PIL.__version__, 'plain Pillow replaced Pillow-SIMD: ' + PIL.__version__"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) run.py serve

# The whole topology on this machine (README, "The whole story on one machine").
cluster: $(STAMP)
	$(PY) run.py cluster

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

# The whole suite again with every test's app sharded across two databases
# (and its ledger in a third), but for the tests that would run the same way
# again (marked one_pass: their own shard clusters, or no rows at all; and,
# by tests/conftest.py, every test that makes no database).
unit-sharded: $(STAMP)
	PICSHARE_TEST_SHARDS=2 $(PY) -m pytest -q -m "not one_pass"

test: lint typecheck unit unit-sharded

bench: $(STAMP)
	$(PY) run.py bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
