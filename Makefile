# The two commands a new user types: `make demo` and `make test`.
# Both set up everything first (Debian packages, .venv, npm packages);
# setup is idempotent and quick when everything is already there.

VENV      := .venv
PY        := $(VENV)/bin/python
STAMPS    := .stamps
PYTEST_ARGS ?=
# The part folders, for tools that read packages from disk (lint-imports).
PART_DIRS := cli:protocol:edge:bundler:firmware:boardlink:provisioning:hil_tests

.PHONY: setup demo test lint unit hil bench clean

setup: $(STAMPS)/system $(STAMPS)/venv $(STAMPS)/npm $(STAMPS)/rp2

$(STAMPS)/system: scripts/setup-system.sh
	bash scripts/setup-system.sh
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: pyproject.toml hil_tests/pyproject.toml $(STAMPS)/system
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./hil_tests
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/npm: firmware/wasm/package.json $(STAMPS)/system
	cd firmware/wasm && npm install --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMPS) && touch $@

# The emulated Pico: rp2040js (npm, pinned) and the MicroPython UF2 found by its pinned
# SHA-256 ($$METERLINK_RP2_UF2, ../shared/firmware/, the cache); without one the rp2 HIL
# tests are skipped and say how to get it.
$(STAMPS)/rp2: hil_tests/rp2040js/package.json $(STAMPS)/venv
	cd hil_tests/rp2040js && npm ci --no-audit --no-fund --loglevel=error
	$(PY) -m meterlink.hil.rp2_firmware fetch
	@mkdir -p $(STAMPS) && touch $@

demo: setup
	$(VENV)/bin/meterlink demo $(DEMO_ARGS)

# ruff, mypy --strict, and the import contracts (docs/architecture.md, .importlinter).
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	PYTHONPATH=$(PART_DIRS) $(VENV)/bin/lint-imports

# Every test but the long campaigns (-m slow) and the benchmarks (-m bench).
test: lint
	$(PY) -m pytest -n 2 --dist loadgroup -m "not slow and not bench" $(PYTEST_ARGS)

hil: setup
	$(PY) -m pytest -n 2 --dist loadgroup -m hil $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest -s -m bench $(PYTEST_ARGS)

clean:
	rm -rf $(STAMPS) build *.egg-info .pytest_cache .mypy_cache .ruff_cache artifacts
