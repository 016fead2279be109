#!/usr/bin/env python3
"""Every function's environment, as `make deploy-function` hands it to `cargo lambda deploy`,
read back by the pinned cargo-lambda itself. Run by `make test` (infra/local/test.sh) after
`make build`: it needs each function's target/lambda/<bin>/bootstrap (cargo lambda deploy
packages it, even with --dry) and .local/wiring.json (the local stack's provisioning writes it),
read through `local-lambda wiring environments`, the file's one reader.

For each function of the wiring, the environment the local stack gives it (its template
environment with local ids: queue URLs, table names, `<queue ARN>=<DLQ URL>` pairs; plus the
local JWT settings of the HTTP functions) is written to the crate's env file by the same code
as deploy_function.py (infra/deploy/cargo_lambda.py), then

    cargo lambda deploy --binary-name <bin> --iam-role <a role ARN> --dry <name>

runs from the repository's root as deploy_function.py runs it. cargo-lambda's --dry does not
fail on an env file it cannot read (it prints an empty environment), so the check compares the
environment it prints with the one written: any difference, a value cargo-lambda cannot read
or reads otherwise, fails.

`--self-test` proves the check on infra/deploy/checks/fixtures/deploy-env-broken.env (the env file
deploy_function.py used to write: unquoted values, one holding `=`), which must fail, and on
infra/deploy/checks/fixtures/deploy-env-tricky.json (values with `=`, commas, `#`, spaces, quotes,
newlines, backslashes, empty), which must be read back exactly. The crate's env file and the
zip cargo-lambda leaves beside each bootstrap are put back as they were.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cargo_lambda  # noqa: E402
import code_model  # noqa: E402

ROOT = cargo_lambda.ROOT
ROLE = "arn:aws:iam::000000000000:role/paysaga-deploy-env-check"  # --dry calls no AWS API
BROKEN_FIXTURE = HERE / "fixtures" / "deploy-env-broken.env"
TRICKY_FIXTURE = HERE / "fixtures" / "deploy-env-tricky.json"


class CheckError(Exception):
    pass


# ----------------------------------------------------------------------------- cargo-lambda's output

def rust_debug_map(text: str) -> dict[str, str]:
    """A HashMap<String, String> as Rust's `{:?}` prints it: `{"K": "v", ...}`."""
    pos = 0

    def expect(token: str) -> None:
        nonlocal pos
        if not text.startswith(token, pos):
            raise CheckError(f"cannot read cargo-lambda's environment {text!r}: expected {token!r} at {pos}")
        pos += len(token)

    def string() -> str:
        nonlocal pos
        expect('"')
        out = []
        while True:
            if pos >= len(text):
                raise CheckError(f"cannot read cargo-lambda's environment {text!r}: unterminated string")
            ch = text[pos]
            pos += 1
            if ch == '"':
                return "".join(out)
            if ch != "\\":
                out.append(ch)
                continue
            esc = text[pos]
            pos += 1
            simple = {"n": "\n", "r": "\r", "t": "\t", "0": "\0", "\\": "\\", '"': '"', "'": "'"}
            if esc in simple:
                out.append(simple[esc])
            elif esc == "u":  # \u{1f984}
                end = text.index("}", pos)
                out.append(chr(int(text[pos + 1:end], 16)))
                pos = end + 1
            else:
                raise CheckError(f"cannot read cargo-lambda's environment {text!r}: escape \\{esc}")

    found: dict[str, str] = {}
    expect("{")
    while not text.startswith("}", pos):
        if found:
            expect(", ")
        key = string()
        expect(": ")
        found[key] = string()
    expect("}")
    return found


def printed_environment(output: str) -> dict[str, str] | None:
    """The environment `cargo lambda deploy --dry` prints (`  - env_options: {...}`); None when
    it prints none (no env file configured for the crate)."""
    for line in output.splitlines():
        head, sep, rest = line.partition("- env_options: ")
        if sep and not head.strip():
            return rust_debug_map(rest.strip())
    return None


# ----------------------------------------------------------------------------- the check

def bootstrap_of(binary: str) -> Path:
    """What cargo-lambda packages for the function: <target>/lambda/<bin>/bootstrap."""
    return code_model.target_directory() / "lambda" / binary / "bootstrap"


def read_back(binary: str, text: str) -> dict[str, str] | None:
    """Writes `text` as the crate's env file, runs `cargo lambda deploy --dry` as
    deploy_function.py runs it, and answers the environment cargo-lambda read from it.
    Leaves the env file and the bootstrap's folder as they were."""
    crate = code_model.function_crates()[binary]
    env_file = cargo_lambda.env_file_of(crate)
    bootstrap = bootstrap_of(binary)
    if not bootstrap.is_file():
        raise CheckError(f"{bootstrap} is missing: `make build` builds it (cargo lambda deploy packages it, even --dry)")
    zipped = bootstrap.with_name("bootstrap.zip")
    before = env_file.read_bytes() if env_file.exists() else None
    zipped_before = zipped.exists()
    env_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        env_file.write_text(text)
        command = cargo_lambda.deploy_command(binary, ROLE, f"paysaga-check-{binary}", dry=True)
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            raise CheckError(f"{binary}: cargo lambda deploy --dry failed ({run.returncode}):\n{run.stderr}{run.stdout}")
        return printed_environment(run.stdout)
    finally:
        if before is None:
            env_file.unlink(missing_ok=True)
        else:
            env_file.write_bytes(before)
        if not zipped_before:
            zipped.unlink(missing_ok=True)


def difference(expected: Mapping[str, str], read: dict[str, str] | None) -> str | None:
    """What cargo-lambda read otherwise than written, or None when it read it all exactly."""
    if read is None:
        return "cargo lambda deploy read no env file (the crate's [package.metadata.lambda.deploy] names none)"
    if expected and not read:
        return ("cargo-lambda cannot read the env file (it read no variable of it; cargo lambda deploy "
                "without --dry stops there, before uploading)")
    problems = [f"{name}: written {value!r}, read {read.get(name)!r}"
                for name, value in sorted(expected.items()) if read.get(name) != value]
    problems += [f"{name}: read {read[name]!r}, never written" for name in sorted(set(read) - set(expected))]
    return "; ".join(problems) or None


def check_function(binary: str, environment: Mapping[str, str]) -> str | None:
    try:
        text = cargo_lambda.env_file_text(environment)
    except cargo_lambda.EnvFileError as error:
        return str(error)
    return difference(environment, read_back(binary, text))


def self_test(binary: str) -> int:
    failures = []
    broken = BROKEN_FIXTURE.read_text()
    expected = dict(line.split("=", 1) for line in broken.splitlines() if line and not line.startswith("#"))
    found = difference(expected, read_back(binary, broken))
    if found is None:
        failures.append(f"{BROKEN_FIXTURE.name} was read back exactly; the check cannot fail")
    else:
        print(f"  {BROKEN_FIXTURE.name} (written as deploy_function.py used to): {found}")
    tricky = json.loads(TRICKY_FIXTURE.read_text())
    found = check_function(binary, tricky["readable"])
    if found is not None:
        failures.append(f"{TRICKY_FIXTURE.name}: {found}")
    else:
        print(f"  {TRICKY_FIXTURE.name}: its {len(tricky['readable'])} values read back exactly")
    for name, value in tricky["unwritable"].items():
        try:
            cargo_lambda.env_file_text({name: value})
            failures.append(f"{name}={value!r}: written, though cargo-lambda cannot read it back")
        except cargo_lambda.EnvFileError as error:
            print(f"  refused, as it must be: {error}")
    if failures:
        for failure in failures:
            print(f"deploy-env: self-test FAILED: {failure}", file=sys.stderr)
        return 1
    print(f"deploy-env: self-test passed: the unquoted env file fails, every tricky value reads back (binary {binary})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wiring", type=Path, default=ROOT / ".local" / "wiring.json",
                        help="the local stack's wiring (default .local/wiring.json)")
    parser.add_argument("--local-lambda", type=Path, default=ROOT / "target" / "debug" / "local-lambda",
                        help="local-lambda, the wiring file's one reader (default target/debug/local-lambda)")
    parser.add_argument("--self-test", action="store_true",
                        help="the check must fail on the broken fixture and pass the tricky one")
    args = parser.parse_args()
    if not args.wiring.is_file():
        print(f"deploy-env: ERROR: no {args.wiring}: the local stack's provisioning writes it", file=sys.stderr)
        return 1
    asked = subprocess.run([str(args.local_lambda), "wiring", "environments", "--wiring", str(args.wiring)],
                           capture_output=True, text=True)
    if asked.returncode != 0:
        raise CheckError(f"{args.local_lambda} wiring environments failed: {asked.stderr.strip()}")
    functions: dict[str, dict[str, str]] = json.loads(asked.stdout)
    if args.self_test:
        return self_test(next(iter(functions)))
    findings = 0
    for binary, environment in functions.items():
        found = check_function(binary, environment)
        if found is None:
            print(f"  {binary}: {len(environment)} variables read back exactly")
        else:
            findings += 1
            print(f"deploy-env: {binary}: {found}", file=sys.stderr)
    if findings:
        print(f"deploy-env: {findings} function(s) whose environment cargo lambda deploy cannot take", file=sys.stderr)
        return 1
    print(f"deploy-env: cargo lambda deploy --dry reads every function's environment back exactly ({len(functions)} functions)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckError as error:
        print(f"deploy-env: ERROR: {error}", file=sys.stderr)
        sys.exit(1)
