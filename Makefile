# The README's two commands are `make demo` and `make test`; everything else supports them.
VENV ?= .venv
BIN := $(VENV)/bin
PROFILE ?= default

.PHONY: setup demo services services-down status test test-team-stack test-unit lint bench clean

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

# MLflow on PostgreSQL + S3 (builds SeaweedFS the first time): registry, aliases, webhook, serving
test-team-stack: setup
	DUALENGINE_MLFLOW_BACKEND=postgres $(BIN)/dualengine setup --profile tiny
	DUALENGINE_MLFLOW_BACKEND=postgres $(BIN)/python -m pytest -q tests/e2e/test_team_stack.py \
		tests/e2e/test_lifecycle.py::test_run_registers_promotes_indexes_and_answers \
		tests/e2e/test_hybrid.py::test_mlflow_models_serve_answers_http_with_the_access_filter

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
