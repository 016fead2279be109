# paysaga — the two commands a newcomer needs are `make run` and `make test`.
# Everything they need is installed under .local/ (git-ignored) by the project's own files.

SHELL := bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# One crate per function under functions/, each named like its directory and its binary.
FUNCTIONS := $(notdir $(wildcard functions/*))
# Built for Lambda with the release-abort profile (Cargo.toml): one invocation is one unit of
# work (an HTTP request, a redrive run), and unwinding would only add to the zip. Every other
# function unwinds (release): an SQS consumer's panic fails its message, not its batch.
ABORT_FUNCTIONS := api admin-api graphql wallet-rpc dlq-redrive
# `cargo lambda build` for arm64 of functions $(1), with profile flag $(2); --bin too, or it
# copies every binary it finds under that profile's directory, stale ones too, to target/lambda/.
lambda_build = $(if $(strip $(1)),PATH="$(CURDIR)/.local/venv/bin:$$PATH" cargo lambda build $(2) --arm64 --locked \
	$(foreach function,$(1),-p $(function) --bin $(function)))
# The profile flag of function $(1).
lambda_profile = $(if $(filter $(1),$(ABORT_FUNCTIONS)),--profile release-abort,--release)

include infra/local/stack.mk

.PHONY: help run stop test check unit integration schemas build-local build system-up system-down dlq dlq-redrive dlq-show dlq-replay rebuild-read-models token bench check-infra sam-install deploy deploy-function

help: ## Show the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 16

run: local-up build-local ## Start the local AWS stack and every function; show how to use them
	@infra/local/system.sh up
	@infra/local/walkthrough.sh

stop: system-down local-down ## Stop everything `make run` started

test: ## Everything: format, lints, unit and handler tests, cfn-lint, integration tests on the local stack
	@LOCAL_FEATURES='$(LOCAL_FEATURES)' infra/local/test.sh

check: ## Format check and clippy
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit: ## Unit and handler tests (no network)
	$(CARGO) test --workspace --locked

schemas: ## Regenerate the event contracts' JSON Schemas (events/schemas/) from the Rust types
	$(CARGO) test -p paysaga-domain --test event_contracts --locked -- --ignored write_schemas

integration: build-local ## Integration tests against an already running stack (make run)
	@LOCAL_FEATURES='$(LOCAL_FEATURES)' infra/local/integration.sh

# The local stack's features: test-only fault injection, the local JWT check.
LOCAL_FEATURES := payment-saga/fault-injection,event-relay/fault-injection,api/local-authorizer,admin-api/local-authorizer,graphql/local-authorizer,wallet-rpc/local-authorizer
# What build-local builds; make test builds every target instead (infra/local/test.sh), in the
# same build as its tests: one feature set, so the binaries come out of the test build.
LOCAL_BUILD ?= $(addprefix -p ,$(FUNCTIONS) local-lambda payment-processor paysaga-admin)

build-local: ## Build the functions (with test-only fault injection and the local JWT check), local-lambda, the fake payment processor and paysaga-admin (debug)
	$(CARGO) build --locked $(LOCAL_BUILD) --features $(LOCAL_FEATURES)

build: local-install ## Build every function with cargo lambda for arm64 (what infra/template.yaml deploys; ABORT_FUNCTIONS with release-abort)
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	$(call lambda_build,$(filter-out $(ABORT_FUNCTIONS),$(FUNCTIONS)),--release)
	$(call lambda_build,$(filter $(ABORT_FUNCTIONS),$(FUNCTIONS)),--profile release-abort)

# ---------------------------------------------------------------- deploy (infra/deploy, infra/deploy/checks)
STAGE ?= dev
STACK ?= paysaga-$(STAGE)
PAYSAGA_PY := .local/venv/bin/python

sam-install: ## Install the AWS SAM CLI into .local/sam-venv (its own venv: its pins clash with LocalStack's)
	@infra/deploy/sam.sh install

check-infra: local-install sam-install build-local ## Static checks, no AWS call: the crates' boundaries, IAM least privilege, CodeUri/environment/crate metadata, what AWS refuses (stack.py), what make deploy runs, alarms and dashboard, sam validate --lint
	@# Each check must fire on its broken fixture, or the check itself is broken.
	$(PAYSAGA_PY) infra/deploy/checks/architecture.py --self-test
	$(PAYSAGA_PY) infra/deploy/checks/architecture.py
	$(PAYSAGA_PY) infra/deploy/checks/iam.py --self-test >/dev/null && echo "iam: self-test passed (infra/deploy/checks/fixtures/iam-broken.yaml)"
	$(PAYSAGA_PY) infra/deploy/checks/iam.py
	$(PAYSAGA_PY) infra/deploy/checks/deploy.py --self-test >/dev/null && echo "deploy: self-test passed (infra/deploy/checks/fixtures/deploy-broken.yaml)"
	$(PAYSAGA_PY) infra/deploy/checks/deploy.py
	$(PAYSAGA_PY) infra/deploy/checks/stack.py --self-test >/dev/null && echo "stack: self-test passed (infra/deploy/checks/fixtures/stack-broken.yaml)"
	$(PAYSAGA_PY) infra/deploy/checks/stack.py
	$(PAYSAGA_PY) infra/deploy/checks/deploy_command.py --self-test >/dev/null && echo "deploy-command: self-test passed (infra/deploy/checks/fixtures/deploy-broken.mk)"
	$(PAYSAGA_PY) infra/deploy/checks/deploy_command.py
	$(PAYSAGA_PY) infra/deploy/checks/operations.py --self-test >/dev/null && echo "operations: self-test passed (infra/deploy/checks/fixtures/operations-broken.yaml)"
	$(PAYSAGA_PY) infra/deploy/checks/operations.py
	infra/deploy/sam.sh validate --lint --template infra/template.yaml --region us-east-1

deploy: build sam-install ## Build every function (arm64) and deploy the stage's own stack with SAM: STAGE=dev [STACK=paysaga-STAGE REGION=... JWT_ISSUER=https://... JWT_AUDIENCE=a,b PAYMENT_PROCESSOR_URL=https://... PARAMETERS="Key=value ..." DRY=1]
	rm -f target/lambda/*/bootstrap.zip # cargo lambda deploy leaves these beside bootstrap; SAM would upload them too
	@# Per stage: --stack-name and --config-env on every run, nothing saved (infra/deploy/sam_deploy.py).
	$(PAYSAGA_PY) infra/deploy/sam_deploy.py --stage '$(STAGE)' --stack '$(STACK)' $(if $(REGION),--region '$(REGION)') \
	  $(if $(JWT_ISSUER),--parameter 'JwtIssuer=$(JWT_ISSUER)') $(if $(JWT_AUDIENCE),--parameter 'JwtAudience=$(JWT_AUDIENCE)') \
	  $(if $(PAYMENT_PROCESSOR_URL),--parameter 'PaymentProcessorUrl=$(PAYMENT_PROCESSOR_URL)') \
	  $(foreach parameter,$(PARAMETERS),--parameter '$(parameter)') $(if $(DRY),--dry)

deploy-function: local-install ## Update one deployed function with cargo lambda deploy: FUNCTION=api [STACK=paysaga-dev REGION=... ENDPOINT_URL=... DRY=1]
	@test -n "$(FUNCTION)" || { echo "usage: make deploy-function FUNCTION=<$(subst $(eval) ,|,$(FUNCTIONS))> [STACK=$(STACK)]" >&2; exit 2; }
	rustup target add aarch64-unknown-linux-gnu >/dev/null
	$(call lambda_build,$(FUNCTION),$(call lambda_profile,$(FUNCTION)))
	$(PAYSAGA_PY) infra/deploy/deploy_function.py $(FUNCTION) --stack $(STACK) $(if $(REGION),--region $(REGION)) \
	  $(if $(ENDPOINT_URL),--endpoint-url $(ENDPOINT_URL)) $(if $(DRY),--dry)

system-up: build-local ## Start the functions on the running local stack
	@infra/local/system.sh up

system-down: ## Stop the functions
	@infra/local/system.sh down

bench: ## Measure cold starts, footprint, AWS calls and cost per payment, throughput (BENCH_ARGS=--help)
	@ABORT_FUNCTIONS="$(ABORT_FUNCTIONS)" infra/local/bench/run.sh $(BENCH_ARGS)

# paysaga-admin on the local stack: make run builds it and writes .local/stack.env (credentials,
# endpoints: Lambda calls go to local-lambda's Invoke API). On a deployed stack, run
# paysaga-admin itself with AWS credentials (docs/operations.md).
local_admin = test -f .local/stack.env || { echo "no local stack: make run first" >&2; exit 2; }; \
  test -x target/debug/paysaga-admin || { echo "no paysaga-admin yet: make run builds it" >&2; exit 2; }; \
  . .local/stack.env && target/debug/paysaga-admin

dlq: ## Dead-letter queues: depths and parked messages (more: target/debug/paysaga-admin dlq --help)
	@$(local_admin) dlq status
	@echo
	@$(local_admin) dlq parked

dlq-redrive: ## Redrive the dead-letter queues now (QUEUE=payments-dlq for one; RATE=messages/s)
	@$(local_admin) dlq redrive $(QUEUE) $(if $(RATE),--rate $(RATE))

dlq-show: ## One parked message, whole, with why it was parked: ID=<parked id>
	@test -n "$(ID)" || { echo "usage: make dlq-show ID=<parked id>" >&2; exit 2; }
	@$(local_admin) dlq show "$(ID)"

# A replay goes through the admin API, as the operator OPERATOR (a development token with the
# admin scope), so that the audit trail records who replayed what, and why.
OPERATOR ?= local-operator
dlq-replay: ## Replay a parked message, recorded in the audit trail: ID=<parked id> REASON="<why>" [BODY=<file with the fixed body>] [OPERATOR=<subject>]
	@test -n "$(ID)" && test -n "$(REASON)" || { echo 'usage: make dlq-replay ID=<parked id> REASON="<why>" [BODY=file] [OPERATOR=subject]' >&2; exit 2; }
	@export PAYSAGA_TOKEN="$$(target/debug/paysaga-admin dev-token --sub '$(OPERATOR)' --admin --hours 1 2>/dev/null)" && \
	  $(local_admin) dlq replay "$(ID)" --reason "$(REASON)" $(if $(BODY),--body-file "$(BODY)")

token: ## A development token for the local API: SUB=<caller> [ADMIN=1] (signed by the local stack's key)
	@test -n "$(SUB)" || { echo "usage: make token SUB=<caller, e.g. alice> [ADMIN=1]" >&2; exit 2; }
	@test -x target/debug/paysaga-admin || { echo "no paysaga-admin yet: make run builds it" >&2; exit 2; }
	@target/debug/paysaga-admin dev-token --sub "$(SUB)" $(if $(filter 1 yes true,$(ADMIN)),--admin)

rebuild-read-models: ## Rebuild the read models from the audit trail into a new table: INTO=<table name> (local stack)
	@test -n "$(INTO)" || { echo "usage: make rebuild-read-models INTO=<new table name>" >&2; exit 2; }
	@$(local_admin) rebuild-read-models --create --into "$(INTO)" \
	  --from "$$(target/debug/local-lambda wiring table EventStoreTable)"
