# The README's two commands are `make demo` and `make test`; everything else supports them.
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= default

.PHONY: setup demo services services-down status test test-unit lint bench clean

setup: ## virtualenv, Weaviate binary, base and embedding models (idempotent)
	bash infra/scripts/setup_venv.sh
	$(BIN)/dualengine setup --profile $(PROFILE)

services: setup ## start Prefect, MLflow and Weaviate on 127.0.0.1
	$(BIN)/dualengine services up

services-down:
	$(BIN)/dualengine services down

status:
	$(BIN)/dualengine status

demo: services ## the main job on the embedded defaults
	$(BIN)/dualengine run --profile $(PROFILE)
	$(BIN)/dualengine status

test: ## unit, integration and end-to-end tests (fixtures start their own servers)
	bash infra/scripts/setup_venv.sh
	$(BIN)/dualengine setup --profile tiny
	$(BIN)/python -m pytest -q

test-unit:
	$(BIN)/python -m pytest -q tests/unit

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: ## P1-P3 and P4 (several minutes each; results in benchmarks/results/)
	$(BIN)/python benchmarks/knowledge_bench.py
	$(BIN)/python benchmarks/lora_bench.py --profile default --out benchmarks/results/lora.json

clean:
	rm -rf .dualengine mlflow/mlflow.db mlflow/artifacts data/prepared
