# Local AWS stack targets (LocalStack + DynamoDB Local under .local/, no Docker).
# Included by the root Makefile: `include infra/local/stack.mk`. Paths are relative to the repo root.
# The root Makefile's default goal is kept whatever the include's position.
_paysaga_saved_goal := $(.DEFAULT_GOAL)

PAYSAGA_STACK := infra/local/stack.sh
PAYSAGA_CFN_LINT := .local/venv/bin/cfn-lint

.PHONY: local-install local-up local-down local-status provision lint-infra

local-install: ## Install LocalStack, AWS CLI, cfn-lint, cargo-lambda and DynamoDB Local into .local/
	$(PAYSAGA_STACK) install

local-up: local-install ## Start LocalStack and DynamoDB Local, provision from infra/template.yaml
	$(PAYSAGA_STACK) up

local-down: system-down ## Stop every process of the local stack (the functions first)
	$(PAYSAGA_STACK) down

local-status: ## Show what runs, where
	$(PAYSAGA_STACK) status

provision: ## Re-provision the running local stack from infra/template.yaml (idempotent)
	$(PAYSAGA_STACK) provision

lint-infra: local-install ## cfn-lint the SAM template with paysaga's own rules (infra/deploy/lint_rules); any finding fails
	$(PAYSAGA_CFN_LINT) --append-rules infra/deploy/lint_rules --include-checks I --non-zero-exit-code informational -- infra/template.yaml
	@# Each paysaga rule must fire on the fixture that breaks it, or the rule itself is broken.
	@found="$$($(PAYSAGA_CFN_LINT) --append-rules infra/deploy/lint_rules --format parseable -- infra/deploy/lint_rules/fixtures/broken.yaml || true)"; \
	for rule in E9101 E9102 E9103 E9104 E9105; do \
	  grep -q ":$$rule:" <<<"$$found" || { echo "lint rule $$rule did not fire on infra/deploy/lint_rules/fixtures/broken.yaml" >&2; exit 1; }; \
	done; echo "paysaga lint rules E9101-E9105: each fires on its broken fixture"

.DEFAULT_GOAL := $(_paysaga_saved_goal)
