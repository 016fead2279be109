# paysaga — the two commands a newcomer needs are `make run` and `make test`.
# Everything they need is installed under .local/ (git-ignored) by the project's own files.

SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# One crate per function under functions/, each named like its directory and its binary.
FUNCTIONS := $(notdir $(wildcard functions/*))

include infra/local/stack.mk

.PHONY: help run stop test check unit integration schemas build-local build system-up system-down dlq dlq-redrive dlq-replay rebuild-read-models bench

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

run: local-up build-local ## Start the local AWS stack and every function; show how to use them
	@infra/local/system.sh up
	@infra/local/walkthrough.sh

stop: system-down local-down ## Stop everything `make run` started

test: ## Everything: format, lints, unit and handler tests, cfn-lint, integration tests on the local stack
	@infra/local/test.sh

check: ## Format check and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: ## Unit and handler tests (no network)
	$(CARGO) test --workspace --locked

schemas: ## Regenerate the event contracts' JSON Schemas (events/schemas/) from the Rust types
	$(CARGO) test -p paysaga --test event_contracts --locked -- --ignored write_schemas

integration: build-local ## Integration tests against an already running stack (make run)
	$(CARGO) test -p paysaga-tests --locked -- --ignored --test-threads 4

build-local: ## Build the functions (with test-only fault injection), local-lambda and the fake payment processor (debug)
	$(CARGO) build --locked $(addprefix -p ,$(FUNCTIONS) local-lambda payment-processor) --features payment-saga/fault-injection

build: local-install ## Build every function with cargo lambda for arm64 (what infra/template.yaml deploys)
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	PATH="$(CURDIR)/.local/venv/bin:$$PATH" cargo lambda build --release --arm64 --locked $(addprefix -p ,$(FUNCTIONS))

system-up: build-local ## Start the functions on the running local stack
	@infra/local/system.sh up

system-down: ## Stop the functions
	@infra/local/system.sh down

bench: ## Measure cold starts, footprint, AWS calls and cost per payment, throughput (BENCH_ARGS=--help)
	@infra/bench/run.sh $(BENCH_ARGS)

dlq: ## Dead-letter queues: depths and parked messages (more: infra/dlq.py --help)
	@infra/dlq.py status
	@echo
	@infra/dlq.py parked

dlq-redrive: ## Redrive the dead-letter queues now (QUEUE=payments-dlq for one; RATE=messages/s)
	@infra/dlq.py redrive $(QUEUE) $(if $(RATE),--rate $(RATE))

dlq-replay: ## Replay a parked message: ID=<parked id> [BODY=<file with the fixed body>]
	@test -n "$(ID)" || { echo "usage: make dlq-replay ID=<parked id> [BODY=file]" >&2; exit 2; }
	@infra/dlq.py replay "$(ID)" $(if $(BODY),--body-file "$(BODY)")

rebuild-read-models: ## Rebuild the read models from the audit trail into a new table: INTO=<table name> (local stack)
	@test -n "$(INTO)" || { echo "usage: make rebuild-read-models INTO=<new table name>" >&2; exit 2; }
	@test -f .local/stack.env || { echo "no local stack: make run first" >&2; exit 2; }
	@. .local/stack.env && $(CARGO) run --quiet --locked -p paysaga-admin -- rebuild-read-models --create --into "$(INTO)" \
	  --from "$$(python3 -c 'import json; print(json.load(open(".local/wiring.json"))["tables"]["EventStoreTable"])')"
