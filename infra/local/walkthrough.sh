#!/usr/bin/env bash
# Prints the README's walk-through (the parts between its walkthrough and put-events markers), so that
# `make run` shows exactly the commands the README documents.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
api="http://${PAYSAGA_API_ADDR:-127.0.0.1:3000}"
cat <<TXT

paysaga is running on the local stack:
  API             $api   (REST: docs/openapi.json; GraphQL: $api/graphql;
                  WalletService: $api/paysaga.wallet.v1.WalletService/...)
  GraphiQL        $api/graphiql#bearer=<token>   in a browser; a token: make -s token SUB=alice
  LocalStack      ${AWS_ENDPOINT_URL:-http://127.0.0.1:4566} (SQS, EventBridge)   logs: .local/logs/
  DynamoDB Local  ${AWS_ENDPOINT_URL_DYNAMODB:-http://127.0.0.1:8000}
  functions       .local/logs/local-lambda.log   (stop everything: make stop)
  Lambda Invoke   http://${PAYSAGA_INVOKE_ADDR:-127.0.0.1:9001}  (infra/local/aws lambda invoke --function-name dlq-redrive ...)
  dead letters    make dlq   (README: "Dead letters")

Try it (from README.md):
TXT
sed -n -e '/<!-- walkthrough:start -->/,/<!-- walkthrough:end -->/p' \
  -e '/<!-- put-events:start -->/,/<!-- put-events:end -->/p' "$ROOT/README.md" |
  grep -v -e '^<!--' -e '^```' | sed 's/^/  /'
