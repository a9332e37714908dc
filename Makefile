# The two commands a newcomer needs: `make demo` and `make test`. Both install what is missing.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bootstrap demo demo-down test lint bench bench-scale bench-nodes

bootstrap:
	@bash scripts/bootstrap.sh

# demo.sh installs what is missing itself (scripts/bootstrap.sh is its first step).
demo:
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo.sh down

test: bootstrap
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: bootstrap
	@$(VENV)/bin/ruff check src tests bench && $(VENV)/bin/mypy src && $(VENV)/bin/lint-imports

# bench/run.py (one VM's command, fan-out, output, files: about 3 minutes), then the runs over
# 600 bare agents with 1, 2 and 3 nodes (about 6 minutes; alone: make bench-nodes).
bench: bootstrap
	@$(PY) bench/run.py && $(PY) -m bench.nodes

# The engine at fleet scale: 200, 2,000 and (when the memory allows) 10,000 bare agents.
bench-scale: bootstrap
	@$(PY) -m bench.scale

# Runs over 600 bare agents with 1, 2 and 3 nodes on one throwaway PostgreSQL (issue 12).
bench-nodes: bootstrap
	@$(PY) -m bench.nodes
