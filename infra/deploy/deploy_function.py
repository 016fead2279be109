#!/usr/bin/env python3
"""`make deploy-function FUNCTION=<bin> STACK=<stack>`: update one function of a deployed stack
with `cargo lambda deploy`, in seconds rather than a whole `sam deploy`.

The stack stays the owner of the function's role and environment (both name the stack's
resources): this reads them from the deployed function (found through the stack by its logical
id in infra/template.yaml), writes the environment to the env file the crate's
[package.metadata.lambda.deploy] names (quoted for cargo-lambda's reader: infra/deploy/cargo_lambda.py,
which `make test` proves with every function's local environment), and runs

    cargo lambda deploy --binary-name <bin> --iam-role <its role> <its physical name>

which uploads target/lambda/<bin>/ (built by `make build`) and applies the crate's memory,
timeout and tracing - the same values as the template's (infra/deploy/checks/deploy.py checks that).
Run with the Python of .local/venv (boto3). --endpoint-url targets LocalStack.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "deploy" / "checks"))

import boto3  # noqa: E402
from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402

import cargo_lambda  # noqa: E402  (beside this file)
import code_model  # noqa: E402
import template_model as tm  # noqa: E402


def fail(message: str) -> int:
    print(f"deploy-function: ERROR: {message}", file=sys.stderr)
    return 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="the function's binary (a crate under functions/): api, payment-saga, ...")
    parser.add_argument("--stack", required=True, help="the deployed stack's name (make deploy: paysaga-<stage>)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    parser.add_argument("--profile", default=os.environ.get("AWS_PROFILE"))
    parser.add_argument("--endpoint-url", help="e.g. http://localhost:4566 for LocalStack")
    parser.add_argument("--dry", action="store_true", help="cargo lambda deploy --dry: package, do not upload")
    args = parser.parse_args()

    template = tm.load(tm.TEMPLATE)
    by_binary = {tm.binary_of(fn.get("CodeUri")): lid for lid, fn in tm.functions(template).items()}
    lid = by_binary.get(args.function)
    if lid is None:
        return fail(f"{args.function} is not a function of infra/template.yaml "
                    f"(its functions: {', '.join(sorted(b for b in by_binary if b))})")
    env_file = cargo_lambda.env_file_of(code_model.function_crates()[args.function])
    artifact = ROOT / "target" / "lambda" / args.function / "bootstrap"
    if not artifact.is_file():
        return fail(f"{artifact.relative_to(ROOT)} is missing: run `make build` first")

    session = boto3.session.Session(profile_name=args.profile, region_name=args.region)
    client = lambda service: session.client(service, endpoint_url=args.endpoint_url)  # noqa: E731
    try:
        name = client("cloudformation").describe_stack_resource(
            StackName=args.stack, LogicalResourceId=lid)["StackResourceDetail"]["PhysicalResourceId"]
        config = client("lambda").get_function_configuration(FunctionName=name)
    except (ClientError, BotoCoreError) as error:
        return fail(f"cannot read {lid} of stack {args.stack}: {error} "
                    "(deploy the stack first: make deploy)")
    role = config["Role"]
    variables = config.get("Environment", {}).get("Variables", {})
    try:
        text = cargo_lambda.env_file_text(variables)
    except cargo_lambda.EnvFileError as error:
        return fail(f"{name}'s environment cannot be handed to cargo lambda deploy: {error}")
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(text)
    print(f"deploy-function: {lid} is {name} (role {role.rsplit('/', 1)[-1]}); "
          f"its {len(variables)} environment variables -> {env_file.relative_to(ROOT)}")

    command = cargo_lambda.deploy_command(args.function, role, name, region=args.region, profile=args.profile,
                                          endpoint_url=args.endpoint_url, dry=args.dry)
    print("deploy-function: " + shlex.join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
