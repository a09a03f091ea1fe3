# Omixa: `make run` serves a working gateway on http://127.0.0.1:8000; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1

.PHONY: install run serve test lint format bench bench-billing clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Several workers share their metrics through files (prometheus-client's multiprocess mode),
# emptied before each start.
ifneq ($(WORKERS),1)
PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus
endif

run: export OMIXA_DEBUG ?= 1
run: export PROMETHEUS_MULTIPROC_DIR := $(PROMETHEUS_MULTIPROC_DIR)
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput -v 0
	$(BIN)/python manage.py load_catalog
	$(BIN)/python manage.py seed_demo --base-url http://$(HOST):$(PORT)
	$(if $(PROMETHEUS_MULTIPROC_DIR),mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)" && rm -f "$(PROMETHEUS_MULTIPROC_DIR)"/*.db)
	$(BIN)/uvicorn omixa.asgi:application --host $(HOST) --port $(PORT) --workers $(WORKERS) \
		--loop uvloop --http httptools --lifespan on --no-access-log

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python -m bench $(if $(COMPARE),--compare $(COMPARE),) $(BENCH_ARGS)

# Pricing and roll-up of 1,000,000 usage events; needs DATABASE_URL=postgres://... (see bench/README.md).
bench-billing: $(STAMP)
	$(BIN)/python -m bench.billing $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
