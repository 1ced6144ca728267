# `make test` and `make demo` bootstrap everything they need on a fresh machine:
# the project's virtualenv, and the real agents (Hermes Agent, Codex CLI) pinned in .tools/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools
HERMES_VERSION := 0.19.0
HERMES_MCP_VERSION := 1.26.0
CODEX_VERSION := 0.169.0
HERMES := $(TOOLS)/hermes/bin/hermes
CODEX := $(TOOLS)/node_modules/.bin/codex

export KANBAN_HERMES_BIN := $(abspath $(HERMES))
export KANBAN_CODEX_BIN := $(abspath $(CODEX))

.PHONY: test demo lint bench tools venv clean

test: venv tools
	$(PY) -m pytest

demo: venv tools
	$(PY) -m testing.demo

lint: venv
	$(PY) -m ruff check board worker orchestrator testing tests bench
	$(PY) -m ruff format --check board worker orchestrator testing tests bench
	$(PY) -m mypy

# Run as modules from the repository root, so `import board` is the package, never
# bench/board.py.
bench: venv tools
	$(PY) -m bench.board
	$(PY) -m bench.dispatch
	$(PY) -m bench.mcp_startup
	$(PY) -m bench.end_to_end

# Random SIGKILLs of dispatchers, shims and agents during batches of real tasks, then the
# invariants (docs/lifecycle.md). On demand, never part of `make test`: 200 trials take
# 15-25 minutes on 2 CPUs. Shorter or reproducible: make soak SOAK_ARGS="--trials 20 --seed 7".
.PHONY: soak
soak: venv
	$(PY) -m bench.soak $(SOAK_ARGS)

venv: $(VENV)/.installed
tools: $(HERMES) $(CODEX)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Hermes lives in a virtualenv of its own: it pins its own dependencies (the `mcp` 1.x SDK
# among them), and the project must not inherit them.
$(HERMES):
	$(PYTHON) -m venv $(TOOLS)/hermes
	$(TOOLS)/hermes/bin/pip install -q --upgrade pip
	$(TOOLS)/hermes/bin/pip install -q hermes-agent==$(HERMES_VERSION) mcp==$(HERMES_MCP_VERSION)
	touch $@

$(CODEX):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) @openai/codex@$(CODEX_VERSION)
	touch $@

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .hypothesis
