#!/usr/bin/env python3
"""Static deploy checks: what `make deploy` would find wrong on a real account, found without
one. Run by `make check-infra` (and so by `make test`); exits 1 on any finding.

  D001  a function's CodeUri is not `../target/lambda/<bin>/` of a binary that a workspace
        function crate builds (`cargo lambda build` writes target/lambda/<bin>/bootstrap)
  D002  a function's environment names something the template does not define, or carries a
        literal ARN, URL or AWS host (resources are named through Ref/GetAtt/Sub, never by hand)
  D003  a variable the function's code requires (infra/checks/code_model.py) is not set for it
  D004  a variable is set for a function whose code never reads it
  D005  the crate's [package.metadata.lambda.deploy] disagrees with the template (memory,
        timeout, tracing, env_file), or the function is not arm64 (what `make build` builds)
  D006  SAM cannot translate the template (aws-sam-translator: `sam deploy`'s own transform)
  D007  a function's FunctionName is not `${AWS::StackName}-<bin>` (what
        `make deploy-function` looks for)

`infra/checks/deploy.py --self-test` runs the checks on infra/checks/fixtures/deploy-broken.yaml
and fails unless each finding fires there.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_model  # noqa: E402
import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

# Variables Lambda sets in every function's environment (Lambda Developer Guide, "Defined
# runtime environment variables"), and local-only or tuning variables with defaults. Read by the
# code, never set by the template.
RUNTIME_VARIABLES = {
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_LOG_LEVEL",
    "AWS_LAMBDA_LOG_FORMAT", "_X_AMZN_TRACE_ID",
}
LITERAL_RESOURCE = re.compile(r"arn:|://|amazonaws\.com")


def literal_parts(value: Any) -> list[str]:
    """The text of a value that no intrinsic function produces."""
    if isinstance(value, (str, int, float, bool)):
        return [str(value)]
    if (text := tm.sub_text(value)) is not None:
        return [re.sub(r"\$\{[^}]*\}", "", text)]
    if isinstance(value, dict) and "Fn::Join" in value:
        return [p for item in value["Fn::Join"][1] for p in literal_parts(item)]
    return []


def deploy_metadata(crate: Path) -> dict | None:
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    return manifest.get("package", {}).get("metadata", {}).get("lambda", {}).get("deploy")


def workspace_members() -> set[Path]:
    manifest = tomllib.loads((code_model.ROOT / "Cargo.toml").read_text())
    return {(code_model.ROOT / m).resolve() for m in manifest.get("workspace", {}).get("members", [])}


def check(template: dict) -> list[Finding]:
    findings: list[Finding] = []
    try:
        tm.transformed(template)
    except tm.TemplateError as error:
        findings.append(Finding("D006", "template", str(error)))
    defined = set(template.get("Resources", {})) | set(template.get("Parameters", {}))
    crates = code_model.function_crates()
    members = workspace_members()

    for lid, fn in tm.functions(template).items():
        binary = tm.binary_of(fn.get("CodeUri"))
        crate = crates.get(binary) if binary else None
        if crate is None or crate.resolve() not in members:
            findings.append(Finding("D001", lid, f"CodeUri {fn.get('CodeUri')!r}: no workspace function crate "
                                    f"builds {binary or 'that'} (crates: {', '.join(sorted(crates))})"))
        env = fn.get("Environment", {}).get("Variables", {}) or {}
        for name, value in env.items():
            unknown = tm.references(value) - defined
            if unknown:
                findings.append(Finding("D002", f"{lid}.{name}", f"names {', '.join(sorted(unknown))}, not in the template"))
            for text in literal_parts(value):
                if LITERAL_RESOURCE.search(text):
                    findings.append(Finding("D002", f"{lid}.{name}", f"literal {text!r}: name the resource with Ref/GetAtt/Sub"))
        if fn.get("Architectures") != ["arm64"]:
            findings.append(Finding("D005", lid, f"Architectures {fn.get('Architectures')}: make build builds arm64"))
        expected_name = f"${{AWS::StackName}}-{binary}"
        if tm.sub_text(fn.get("FunctionName")) != expected_name:
            findings.append(Finding("D007", lid, f"FunctionName {tm.dumps(fn.get('FunctionName'))}, expected !Sub \"{expected_name}\""))
        if crate is None:
            continue

        facts = code_model.facts_of(crate)
        set_names = set(env)
        for name in sorted(facts.env_required - set_names - RUNTIME_VARIABLES):
            findings.append(Finding("D003", lid, f"{binary} requires {name}, the template does not set it"))
        for name in sorted(set_names - facts.env_read):
            findings.append(Finding("D004", f"{lid}.{name}", f"set, but nothing {binary} runs reads it"))

        meta = deploy_metadata(crate)
        if meta is None:
            findings.append(Finding("D005", lid, f"{crate.name}/Cargo.toml has no [package.metadata.lambda.deploy]"))
            continue
        tracing = "active" if fn.get("Tracing") == "Active" else "passthrough"
        wanted = {
            "memory": int(fn.get("MemorySize", 128)),
            "timeout": int(fn.get("Timeout", 3)),
            "tracing": tracing,
            "env_file": f".local/deploy/{binary}.env",
        }
        for key, value in wanted.items():
            have = meta.get(key)
            if (str(have).lower() if key == "tracing" else have) != value:
                findings.append(Finding("D005", lid, f"{crate.name}/Cargo.toml deploy {key} = {have!r}, the template says {value!r}"))
    return findings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=tm.TEMPLATE)
    parser.add_argument("--self-test", action="store_true",
                        help="check infra/checks/fixtures/deploy-broken.yaml: every finding must fire")
    args = parser.parse_args()
    if args.self_test:
        fixture = Path(__file__).resolve().parent / "fixtures" / "deploy-broken.yaml"
        findings = check(tm.load(fixture))
        for f in findings:
            print(f"  {f}")
        expected = {("D001", "NoSuchCrate"), ("D002", "Literals.QUEUE_URL"), ("D002", "Literals.TABLE"),
                    ("D002", "Literals.NOT_DEFINED"), ("D003", "Literals"), ("D004", "Literals.NOBODY_READS"),
                    ("D005", "Literals"), ("D005", "NoSuchCrate"), ("D007", "Literals")}
        missing = {(code, where) for code, where in expected
                   if not any(f.code == code and f.where == where for f in findings)}
        # D006: the same template with an event SAM cannot translate
        broken = tm.load(fixture)
        broken["Resources"]["Literals"]["Properties"]["Events"] = {"Bad": {"Type": "NoSuchEventType"}}
        if not any(f.code == "D006" for f in check(broken)):
            missing.add(("D006", "template"))
        if missing:
            print(f"deploy: self-test FAILED: did not fire: {sorted(missing)}", file=sys.stderr)
            return 1
        print(f"deploy: self-test passed: D001-D007 fire on each of the {len(expected) + 1} broken places of {fixture.name}")
        return 0
    findings = check(tm.load(args.template))
    for f in findings:
        print(f"deploy: {f}", file=sys.stderr)
    if findings:
        print(f"deploy: {len(findings)} finding(s) in {args.template}", file=sys.stderr)
        return 1
    count = len(tm.functions(tm.load(args.template)))
    print(f"deploy: {count} functions: CodeUri of a workspace binary, environment of template resources and "
          "exactly what the code reads, crate deploy metadata as the template, arm64, SAM translates")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except tm.TemplateError as error:
        print(f"deploy: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
