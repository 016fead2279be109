"""What `cargo lambda deploy` is given for one function: the env file it reads and its command
line. One definition, used by `make deploy-function` (infra/deploy/deploy_function.py) and by
the test that hands every function's environment to `cargo lambda deploy --dry`
(infra/deploy/checks/deploy_env.py), so the test reads what a deploy writes.

The env file is read by cargo-lambda 1.9.2 with the crate env-file-reader 0.3.0
(cargo-lambda-metadata/src/env.rs). Its lexer (env-file-reader's src/lexer.rs), in short:

- a bare value is a run of characters other than whitespace, quotes (' ` ") `#` and `=`; the
  word `export` alone is its keyword, not a value;
- a quoted value is '...', `...` or "..." (a double-quoted one may hold \\"); in all three, the
  two characters backslash-n become a newline and backslash-quote becomes the quote, and
  nothing else is unescaped;
- `#` starts a comment outside quotes.

An unquoted value holding `=` (DEAD_LETTER_QUEUES: `<queue ARN>=<DLQ URL>,...`) fails the
whole file, and `cargo lambda deploy` stops before uploading (in --dry it prints an empty
environment instead: the test compares what it prints with what was written). cargo lambda
deploy's --env-var is no way round it: it splits its values on commas.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CARGO_LAMBDA = ROOT / ".local" / "venv" / "bin" / "cargo-lambda"  # pinned: infra/local/requirements.txt

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BARE = re.compile(r"[^\s='`\"#]+")


class EnvFileError(Exception):
    """A variable cargo-lambda's env-file reader cannot be given as it is."""


def env_value(name: str, value: str) -> str:
    """`value` written so that env-file-reader 0.3.0 reads back exactly `value`."""
    if BARE.fullmatch(value) and value != "export":
        return value  # taken as it is, backslashes included
    if "\\n" in value:
        # Every quoted form turns backslash-n into a newline, and a bare value cannot hold the
        # characters that made quoting necessary.
        raise EnvFileError(f"{name}: its value holds a backslash followed by n, which cargo-lambda's "
                           "env-file reader reads as a newline in any quoted form")
    for quote in ("'", "`"):
        # Backslash-quote would end the value early; the quote itself cannot be inside.
        if quote not in value:
            return f"{quote}{value}{quote}"
    if "\\" not in value:
        return '"' + value.replace('"', '\\"') + '"'
    raise EnvFileError(f"{name}: its value holds both kinds of single quote and a backslash, "
                       "which no form of cargo-lambda's env file reads back as written")


def env_file_text(variables: Mapping[str, str]) -> str:
    """The env file of a function's environment, one `NAME=value` a line, values quoted where
    cargo-lambda's reader needs it (see the module's notes)."""
    lines = []
    for name, value in sorted(variables.items()):
        if not NAME.fullmatch(name) or name == "export":
            raise EnvFileError(f"{name!r} is not a variable name cargo-lambda's env file can hold")
        lines.append(f"{name}={env_value(name, str(value))}\n")
    return "".join(lines)


def deploy_metadata(crate: Path) -> dict:
    """The crate's [package.metadata.lambda.deploy] (memory, timeout, tracing, env_file)."""
    manifest = tomllib.loads((crate / "Cargo.toml").read_text())
    return manifest["package"]["metadata"]["lambda"]["deploy"]


def env_file_of(crate: Path) -> Path:
    """Where `cargo lambda deploy`, run from the repository's root, reads the crate's
    environment: its deploy metadata's env_file."""
    return ROOT / deploy_metadata(crate)["env_file"]


def deploy_command(binary: str, role: str, function_name: str, *, region: str | None = None,
                   profile: str | None = None, endpoint_url: str | None = None,
                   dry: bool = False) -> list[str]:
    """`cargo lambda deploy` of target/lambda/<binary>/ to the function `function_name`, run
    from the repository's root (where the crate's env_file path starts)."""
    command = [str(CARGO_LAMBDA), "lambda", "deploy", "--binary-name", binary, "--iam-role", role]
    for flag, value in (("--region", region), ("--profile", profile), ("--endpoint-url", endpoint_url)):
        if value:
            command += [flag, value]
    if dry:
        command.append("--dry")
    command.append(function_name)
    return command
