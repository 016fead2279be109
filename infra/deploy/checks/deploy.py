#!/usr/bin/env python3
"""Static deploy checks: what `make deploy` would find wrong on a real account, found without
one. Run by `make check-infra` (and so by `make test`); exits 1 on any finding.

  D001  a function's CodeUri is not `../target/lambda/<bin>/` of a binary that a workspace
        function crate builds (`cargo lambda build` writes target/lambda/<bin>/bootstrap)
  D002  a function's environment names something the template does not define, or carries a
        literal ARN, URL or AWS host (resources are named through Ref/GetAtt/Sub, never by hand)
  D003  a variable the function's configuration requires is not set for it
  D004  a variable is set for a function whose configuration never reads it

What a function's configuration reads, it says itself: each function reads its environment
into one typed `Config` (`lambda_toolkit::env`), and its binary run as `<binary>
--describe-config` prints the variables that type reads, each required or optional. The
check runs the debug binaries `make build-local` builds (a check of the template alone would
have to guess from the source).
  D005  the crate's [package.metadata.lambda.deploy] disagrees with the template (memory,
        timeout, tracing, env_file), or the function is not arm64 (what `make build` builds)
  D006  SAM cannot translate the template (aws-sam-translator: `sam deploy`'s own transform)
  D007  a function's FunctionName is not `${AWS::StackName}-<bin>` (what
        `make deploy-function` looks for)

`infra/deploy/checks/deploy.py --self-test` runs the checks on infra/deploy/checks/fixtures/deploy-broken.yaml
and fails unless each finding fires there.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import code_model  # noqa: E402
import template_model as tm  # noqa: E402
from iam import Finding  # noqa: E402

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


class CheckError(Exception):
    """The check cannot run (a binary to ask is missing)."""


def described_variables(binary: str) -> dict[str, str]:
    """The variables the function's configuration reads, by name: `required` or `optional`
    (`<binary> --describe-config`, the debug build)."""
    path = code_model.target_directory() / "debug" / binary
    if not path.is_file():
        raise CheckError(f"{path} is missing: `make build-local` builds it")
    run = subprocess.run([str(path), "--describe-config"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    if run.returncode != 0:
        raise CheckError(f"{path} --describe-config failed ({run.returncode}): {run.stderr.strip()}")
    return {v["name"]: v["requirement"] for v in json.loads(run.stdout)["variables"]}


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

        reads = described_variables(binary)
        required = {name for name, requirement in reads.items() if requirement == "required"}
        set_names = set(env)
        for name in sorted(required - set_names):
            findings.append(Finding("D003", lid, f"{binary}'s Config requires {name}, the template does not set it"))
        for name in sorted(set_names - set(reads)):
            findings.append(Finding("D004", f"{lid}.{name}", f"set, but {binary}'s Config never reads it"))

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
                        help="check infra/deploy/checks/fixtures/deploy-broken.yaml: every finding must fire")
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
          "exactly what its Config reads, crate deploy metadata as the template, arm64, SAM translates")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (tm.TemplateError, CheckError) as error:
        print(f"deploy: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
