#!/usr/bin/env python3
"""What `make deploy` would run, checked without running it. Run by `make check-infra` (and so
by `make test`); calls no AWS API.

`make -n deploy STAGE=... [STACK= REGION= JWT_ISSUER= PAYMENT_PROCESSOR_URL=]` prints the
recipe; its `infra/deploy/sam_deploy.py` line is run with `--dry --stack-exists yes|no` (it
prints the `sam deploy` command line, or refuses), and SAM's own precedence (a command-line
option over the samconfig.toml environment it reads, `--config-env` or `default`) says which
stack, region and parameters that command would deploy with. The samconfig.toml is
infra/deploy/checks/fixtures/samconfig-after-dev.toml: what `sam deploy --guided` saved after a first
`make deploy STAGE=dev` (a stack name, a region, parameters), as the recipe used to run it.

  C001  `make deploy STAGE=prod` after a dev deploy does not deploy stack paysaga-prod with
        Stage=prod (or STAGE=dev not paysaga-dev)
  C002  a value saved for another stage reaches this one (the region or parameters of the
        samconfig's `default` environment)
  C003  a new stack is deployed without a value for a parameter that has no default
        (JwtIssuer, PaymentProcessorUrl), or the refusal does not name them; or an update of an
        existing stack is refused for them (it keeps its deployed values)
  C004  a stack name longer than the names built from it allow is not refused, or the longest
        that fits (infra/deploy/checks/stack.py's budget) or the longest stage's default is refused

`--self-test` runs the same on infra/deploy/checks/fixtures/deploy-broken.mk, the recipe before
per-stage deploys in the case it took after the first deploy, and fails unless each finding
fires there.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import stack as stack_checks  # noqa: E402
import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

ROOT = tm.ROOT
SAMCONFIG_FIXTURE = HERE / "fixtures" / "samconfig-after-dev.toml"
BROKEN_FIXTURE = HERE / "fixtures" / "deploy-broken.mk"
ISSUER = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_Prod"
PROCESSOR = "https://processor.paysaga-check.net"
# Make variables the user's environment may hold: never let them into the recipe checked here.
MAKE_INPUTS = ("STAGE", "STACK", "REGION", "JWT_ISSUER", "JWT_AUDIENCE", "PAYMENT_PROCESSOR_URL", "PARAMETERS",
               "DRY", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES", "MAKELEVEL")


@dataclass
class Outcome:
    """What `make deploy` does with some inputs: the sam deploy argv, or a refusal."""
    argv: list[str] | None
    refusal: str = ""


def recipe_line(makefile: Path, variables: dict[str, str]) -> str:
    """The line of `make -n deploy` that deploys: sam_deploy.py's, or a `sam.sh deploy`."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_INPUTS}
    command = ["make", "-n", "--no-print-directory", "-f", str(makefile), "deploy",
               *(f"{k}={v}" for k, v in variables.items())]
    run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{run.stderr}")
    lines = run.stdout.replace("\\\n", " ").splitlines()
    found = [line for line in lines if ("sam_deploy.py" in line or "sam.sh deploy" in line)
             and not line.lstrip().startswith("#")]
    if len(found) != 1:
        raise RuntimeError(f"make -n deploy printed {len(found)} deploy commands:\n{run.stdout}")
    return found[0].strip()


def make_deploy(makefile: Path, variables: dict[str, str], stack_exists: bool) -> Outcome:
    line = recipe_line(makefile, variables)
    if "sam_deploy.py" not in line:  # a sam command run as it is
        return Outcome(shlex.split(line))
    dry = f"{line} --dry --stack-exists {'yes' if stack_exists else 'no'}"
    run = subprocess.run(["bash", "-c", dry], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        return Outcome(None, run.stderr.strip())
    return Outcome(shlex.split(run.stdout.strip().splitlines()[-1]))


def options(argv: list[str]) -> dict[str, list[str]]:
    """`sam deploy`'s options in argv: --name -> its values (none for a flag)."""
    found: dict[str, list[str]] = {}
    tokens = argv[argv.index("deploy") + 1:]
    current = None
    for token in tokens:
        if token.startswith("--"):
            current = token[2:]
            found[current] = []
        elif current is not None:
            found[current].append(token)
    return found


def saved_overrides(text: str | None) -> dict[str, str]:
    """samconfig's parameter_overrides (`Key="value" Key2="value"`)."""
    pairs = (item.partition("=") for item in shlex.split(text or ""))
    return {key: value for key, _, value in pairs}


def effective(argv: list[str], samconfig: dict) -> dict:
    """What sam deploy runs with: each option from the command line, else from the samconfig
    environment it reads (--config-env, default `default`): [env.deploy.parameters] over
    [env.global.parameters]."""
    given = options(argv)
    env = (given.get("config-env") or ["default"])[0]
    section = samconfig.get(env, {})
    saved = {**section.get("global", {}).get("parameters", {}), **section.get("deploy", {}).get("parameters", {})}
    overrides = (dict(item.split("=", 1) for item in given["parameter-overrides"])
                 if "parameter-overrides" in given else saved_overrides(saved.get("parameter_overrides")))
    return {
        "config_env": env,
        "stack_name": (given.get("stack-name") or [saved.get("stack_name")])[0],
        "region": (given.get("region") or [saved.get("region")])[0],
        "parameters": overrides,
    }


def check(makefile: Path) -> list[Finding]:
    findings = []
    samconfig = tomllib.loads(SAMCONFIG_FIXTURE.read_text())
    template = tm.load(tm.TEMPLATE)
    budget, _ = stack_checks.stack_name_budget(template)
    required = sorted(name for name, p in template.get("Parameters", {}).items() if "Default" not in p)
    values = {"JWT_ISSUER": ISSUER, "PAYMENT_PROCESSOR_URL": PROCESSOR}

    # C001, C002: each stage its own stack, nothing of another stage's
    for stage in ("prod", "dev"):
        outcome = make_deploy(makefile, {"STAGE": stage, **values}, stack_exists=stage == "dev")
        if outcome.argv is None:
            findings.append(Finding("C001", f"STAGE={stage}", f"refused: {outcome.refusal}"))
            continue
        got = effective(outcome.argv, samconfig)
        if got["stack_name"] != f"paysaga-{stage}" or got["parameters"].get("Stage") != stage:
            findings.append(Finding("C001", f"STAGE={stage}", f"deploys stack {got['stack_name']} with "
                                    f"Stage={got['parameters'].get('Stage')} (config env {got['config_env']})"))
        if got["region"] is not None:
            findings.append(Finding("C002", f"STAGE={stage}", f"runs in region {got['region']}, saved in samconfig's "
                                    f"{got['config_env']} environment (no REGION= was given)"))
        leaked = {k: v for k, v in got["parameters"].items() if k not in ("Stage", "JwtIssuer", "PaymentProcessorUrl")}
        if leaked:
            findings.append(Finding("C002", f"STAGE={stage}", f"deploys parameters nobody gave: {leaked}"))
    outcome = make_deploy(makefile, {"STAGE": "prod", "REGION": "eu-central-1", **values}, stack_exists=False)
    if outcome.argv is None or effective(outcome.argv, samconfig)["region"] != "eu-central-1":
        findings.append(Finding("C002", "STAGE=prod REGION=eu-central-1", "does not deploy to eu-central-1"))

    # C003: a new stack needs every parameter without a default; an existing one keeps its own
    outcome = make_deploy(makefile, {"STAGE": "qa"}, stack_exists=False)
    if outcome.argv is not None:
        findings.append(Finding("C003", "STAGE=qa (a new stack)", f"deployed without {', '.join(required)}"))
    elif not all(name in outcome.refusal for name in required):
        findings.append(Finding("C003", "STAGE=qa (a new stack)", f"refused without naming {', '.join(required)}: "
                                f"{outcome.refusal}"))
    outcome = make_deploy(makefile, {"STAGE": "qa"}, stack_exists=True)
    if outcome.argv is None:
        findings.append(Finding("C003", "STAGE=qa (an existing stack)", f"refused: {outcome.refusal}"))

    # C004: stack names
    cases = {"a" * (budget.limit + 1): False, "a" * budget.limit: True}
    longest_stage = "s" * int(template["Parameters"]["Stage"].get("MaxLength", 16))
    for stack, fits in cases.items():
        outcome = make_deploy(makefile, {"STAGE": "qa", "STACK": stack, **values}, stack_exists=False)
        if fits != (outcome.argv is not None):
            findings.append(Finding("C004", f"STACK of {len(stack)} characters",
                                    f"{'refused' if fits else 'deployed'}, though {budget.limit} fit "
                                    f"({budget.resource}: {budget.why}) {outcome.refusal}".strip()))
    outcome = make_deploy(makefile, {"STAGE": longest_stage, **values}, stack_exists=False)
    if outcome.argv is None:
        findings.append(Finding("C004", f"STAGE of {len(longest_stage)} characters", f"refused: {outcome.refusal}"))
    return findings


# Where each finding must fire on the fixture (and C004 on a stack name one over the budget).
EXPECTED = {("C001", "STAGE=prod"), ("C002", "STAGE=prod"), ("C002", "STAGE=dev"), ("C003", "STAGE=qa (a new stack)")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help=f"check {BROKEN_FIXTURE.relative_to(ROOT)}: every finding must fire")
    args = parser.parse_args()
    if args.self_test:
        findings = check(BROKEN_FIXTURE)
        for f in findings:
            print(f"  {f}")
        budget, _ = stack_checks.stack_name_budget(tm.load(tm.TEMPLATE))
        expected = EXPECTED | {("C004", f"STACK of {budget.limit + 1} characters")}
        missing = sorted(e for e in expected if not any((f.code, f.where) == e for f in findings))
        if missing:
            print(f"deploy-command: self-test FAILED on {BROKEN_FIXTURE.name}: did not fire: {missing}", file=sys.stderr)
            return 1
        print(f"deploy-command: self-test passed: C001-C004 fire on {BROKEN_FIXTURE.name}")
        return 0
    findings = check(ROOT / "Makefile")
    for f in findings:
        print(f"deploy-command: {f}", file=sys.stderr)
    if findings:
        print(f"deploy-command: {len(findings)} finding(s) in make deploy", file=sys.stderr)
        return 1
    print("deploy-command: make deploy deploys each stage's own stack (paysaga-prod after a dev deploy), with nothing "
          "saved for another stage; refuses a new stack without JwtIssuer/PaymentProcessorUrl and a stack name "
          "too long for its names")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, tm.TemplateError) as error:
        print(f"deploy-command: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
