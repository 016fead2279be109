#!/usr/bin/env python3
"""`make deploy STAGE=<stage>`: deploy the stage's own stack with `sam deploy`, after checking
what AWS would otherwise find wrong half-way.

Each stage is its own stack, named on every run (`--stack-name paysaga-<stage>`, or STACK=), and
SAM reads only the stage's own environment of a samconfig.toml (`--config-env <stage>`), so
nothing saved for one stage (a stack name, a region, parameters) reaches another. Nothing is
saved: the parameters given here override, the others keep the deployed stack's values
(`sam deploy` passes UsePreviousValue for them) or, on a new stack, the template's defaults.

Refused before anything is built into a change set:
- a stack name longer than the names built from it allow (infra/deploy/checks/stack.py computes the
  limit from the template: a function or rule name has 64 characters, a queue name 80);
- a new stack without a value for a parameter that has no default (JwtIssuer,
  PaymentProcessorUrl), or a deployed one still holding a placeholder for it;
- a parameter the template does not declare.

Run with the Python of .local/venv (boto3, cfn-lint); `sam` itself runs from .local/sam-venv
(infra/deploy/sam.sh). --dry prints the `sam deploy` command line instead of running it;
--stack-exists yes|no answers whether the stack exists instead of asking CloudFormation.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "infra" / "deploy" / "checks"))

import stack as stack_checks  # noqa: E402
import template_model as tm  # noqa: E402

SAM = ROOT / "infra" / "deploy" / "sam.sh"
TEMPLATE = Path("infra") / "template.yaml"  # as sam.sh is run: from the repository's root
STACK_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")  # CloudFormation's pattern for a stack name
# The make variables that give a parameter, for the messages.
MAKE_VARIABLES = {"JwtIssuer": "JWT_ISSUER", "JwtAudience": "JWT_AUDIENCE", "PaymentProcessorUrl": "PAYMENT_PROCESSOR_URL"}


class Refused(Exception):
    """What the operator must change; printed without a traceback."""


def parse_parameters(items: list[str], declared: dict) -> dict[str, str]:
    given = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Refused(f"parameter {item!r} is not Key=value")
        if key not in declared:
            raise Refused(f"infra/template.yaml declares no parameter {key} (it has {', '.join(sorted(declared))})")
        if re.search(r"[\s\"']", value):
            # sam deploy --parameter-overrides splits on spaces; no paysaga parameter needs them.
            raise Refused(f"{key}: a value with spaces or quotes cannot be given ({value!r})")
        given[key] = value
    return given


def check_stack_name(name: str, template: dict) -> None:
    budget, _ = stack_checks.stack_name_budget(template)
    if not STACK_NAME.fullmatch(name):
        raise Refused(f"stack name {name!r}: CloudFormation takes letters, digits and hyphens, starting with a letter")
    if len(name) > budget.limit:
        raise Refused(f"stack name {name!r} has {len(name)} characters; at most {budget.limit} fit the names built "
                      f"from it ({budget.resource}: {budget.why}). Choose a shorter STAGE= or STACK=.")


def deployed_parameters(stack: str, region: str | None) -> dict[str, str] | None:
    """The deployed stack's parameter values, or None when there is no such stack."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client = boto3.session.Session(region_name=region).client("cloudformation")
        found = client.describe_stacks(StackName=stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise Refused(f"cannot tell whether stack {stack} exists: {error}") from error
    except BotoCoreError as error:
        raise Refused(f"cannot tell whether stack {stack} exists (credentials, region?): {error}") from error
    if found["StackStatus"] == "REVIEW_IN_PROGRESS":  # a change set never executed: nothing deployed
        return None
    return {p["ParameterKey"]: p.get("ParameterValue", "") for p in found.get("Parameters", [])}


def check_required(template: dict, given: dict[str, str], exists: bool, deployed: dict[str, str] | None,
                   stack: str) -> None:
    """Every parameter without a default has a value: given, or the existing stack's own
    (`deployed`, when known: it must not be a placeholder an older template defaulted to)."""
    problems = []
    for name, parameter in template.get("Parameters", {}).items():
        if "Default" in parameter or name in given:
            continue
        how = f"{MAKE_VARIABLES[name]}=..." if name in MAKE_VARIABLES else f'PARAMETERS="{name}=..."'
        previous = deployed.get(name) if deployed is not None else None
        if not exists or (deployed is not None and previous is None):
            what = re.split(r"[:;.](?:\s|$)", parameter.get("Description", ""))[0].strip()
            problems.append(f"{name} ({how}): {what}")
        elif previous is not None and stack_checks.PLACEHOLDER.search(previous):
            problems.append(f"{name} ({how}): stack {stack} still has the placeholder {previous!r}")
    if problems:
        state = f"stack {stack}" if exists else f"a new stack ({stack})"
        raise Refused(f"{state} needs a value for each parameter without a default:\n  " + "\n  ".join(problems))


def sam_command(stage: str, stack: str, region: str | None, parameters: dict[str, str]) -> list[str]:
    command = [str(SAM.relative_to(ROOT)), "deploy", "--template-file", str(TEMPLATE),
               "--stack-name", stack, "--config-env", stage,
               "--capabilities", "CAPABILITY_IAM", "--resolve-s3", "--no-fail-on-empty-changeset"]
    if region:
        command += ["--region", region]
    command += ["--parameter-overrides", *(f"{k}={v}" for k, v in parameters.items())]
    return command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", required=True)
    parser.add_argument("--stack", required=True, help="the stack's name (make deploy: paysaga-<stage>)")
    parser.add_argument("--region", default=None)
    parser.add_argument("--parameter", action="append", default=[], metavar="Key=value")
    parser.add_argument("--dry", action="store_true", help="print the sam deploy command line; run nothing")
    parser.add_argument("--stack-exists", choices=("yes", "no"),
                        help="whether the stack exists (asked of CloudFormation when not given)")
    args = parser.parse_args()

    template = tm.load(tm.TEMPLATE)
    declared = template.get("Parameters", {})
    check_stack_name(args.stack, template)
    given = {"Stage": args.stage, **parse_parameters(args.parameter, declared)}
    if given["Stage"] != args.stage:
        raise Refused(f"Stage={given['Stage']} given for STAGE={args.stage}: give the stage once, as STAGE=")
    region = args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if args.stack_exists is None:
        deployed = deployed_parameters(args.stack, region)
        exists = deployed is not None
    else:  # told, not asked: the deployed values are not known
        deployed, exists = None, args.stack_exists == "yes"
    check_required(template, given, exists, deployed, args.stack)

    command = sam_command(args.stage, args.stack, args.region, given)
    if args.dry:
        print(shlex.join(command))
        return 0
    print(f"deploy: {'updating' if exists else 'creating'} stack {args.stack} (stage {args.stage})",
          file=sys.stderr, flush=True)
    print("+ " + shlex.join(command), file=sys.stderr, flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Refused as refusal:
        print(f"deploy: REFUSED: {refusal}", file=sys.stderr)
        sys.exit(2)
    except tm.TemplateError as error:
        print(f"deploy: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
