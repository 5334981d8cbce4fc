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

# MLflow on PostgreSQL + S3 (SeaweedFS): registry, aliases, webhook, the lifecycle run and the
# served model on that backend, in a pytest session of their own. Required: fails, never skips.
TEAM_STACK_TESTS := tests/e2e/test_team_stack.py \
	tests/e2e/test_lifecycle.py::test_run_registers_promotes_indexes_and_answers \
	tests/e2e/test_hybrid.py::test_mlflow_models_serve_answers_http_with_the_access_filter
TEAM_STACK_ENV := DUALENGINE_MLFLOW_BACKEND=postgres DUALENGINE_REQUIRE_TEAM_STACK=1

test: ## unit, integration and end-to-end tests, then the team stack (fixtures start their servers)
	bash infra/scripts/setup_venv.sh
	$(BIN)/dualengine setup --profile tiny
	bash infra/scripts/setup_team_stack.sh
	$(BIN)/python -m pytest -q --ignore=tests/e2e/test_team_stack.py
	$(TEAM_STACK_ENV) $(BIN)/python -m pytest -q $(TEAM_STACK_TESTS)

# the team-stack session alone (PostgreSQL installed if missing, SeaweedFS built the first time)
test-team-stack:
	bash infra/scripts/setup_venv.sh
	bash infra/scripts/setup_team_stack.sh
	$(TEAM_STACK_ENV) $(BIN)/python -m pytest -q $(TEAM_STACK_TESTS)

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
