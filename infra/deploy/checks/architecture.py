#!/usr/bin/env python3
"""The crates' boundaries, read from `cargo metadata` (the resolved dependency graph). Run by
`make check-infra` (and so by `make test`); exits 1 on any finding.

  A001  the domain (`paysaga-domain`) reaches, through its normal dependencies on any platform,
        a crate of the AWS SDK, a Lambda runtime, an HTTP client or server, or tokio: the
        domain is plain Rust, and every adapter of its ports lives in another crate
  A002  a function crate (functions/*) depends on another function crate: what two functions
        share belongs in a library crate under shared/
  A003  a library crate under shared/ depends on a function crate or on a tool (infra/, tests/)
  A004  a generic crate (`lambda-toolkit`, `redact`) depends on a paysaga crate: it must stay
        usable by a project that is not paysaga
  A005  a file of a generic crate (any file under its folder: source, tests, README, manifest)
        says a word of paysaga's domain (PAYSAGA_WORDS, in any case, within a longer word too):
        its docs and examples speak of no one project's business

`--self-test` runs the checks on a dependency graph (and generic crates' files) that breaks each
rule once and fails unless each finding fires there, and only there.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOMAIN = "paysaga-domain"
GENERIC = {"lambda-toolkit", "redact"}
# Crates the domain must never reach (a prefix ends with "-" or "_").
FORBIDDEN_IN_DOMAIN = ("aws-sdk-", "aws-config", "aws-smithy-", "aws-types", "aws_lambda_events",
                       "lambda_runtime", "lambda_http", "reqwest", "hyper", "axum", "tokio")
# Words of paysaga's domain that a generic crate's files never say (A005): its examples are of
# orders, items and shops.
PAYSAGA_WORDS = ("paysaga", "payment", "wallet", "deposit", "ledger")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code} {self.message}"


@dataclass
class Graph:
    """The workspace's crates: where each lives (functions, shared, tools), every package's
    dependencies by kind ("normal", "dev", "build"), and the generic crates' files (crate ->
    path from the repository's root -> text)."""
    homes: dict[str, str]
    deps: dict[str, dict[str, set[str]]]
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def reach(self, start: str, kinds: set[str]) -> dict[str, list[str]]:
        """Every package `start` depends on through `kinds`, with one path to it."""
        paths = {start: [start]}
        todo = [start]
        while todo:
            name = todo.pop()
            for kind in kinds:
                for dep in sorted(self.deps.get(name, {}).get(kind, ())):
                    if dep not in paths:
                        paths[dep] = paths[name] + [dep]
                        todo.append(dep)
        del paths[start]
        return paths


def graph_of_workspace() -> Graph:
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    names = {p["id"]: p["name"] for p in meta["packages"]}
    homes, files = {}, {}
    for p in meta["packages"]:
        if p["id"] in meta["workspace_members"]:
            folder = Path(p["manifest_path"]).parent
            rel = folder.relative_to(ROOT)
            homes[p["name"]] = rel.parts[0] if rel.parts[0] in ("functions", "shared") else "tools"
            if p["name"] in GENERIC:
                files[p["name"]] = {str(path.relative_to(ROOT)): path.read_text(errors="replace")
                                    for path in sorted(folder.rglob("*")) if path.is_file()}
    deps: dict[str, dict[str, set[str]]] = {}
    for node in meta["resolve"]["nodes"]:
        kinds = deps.setdefault(names[node["id"]], {})
        for dep in node["deps"]:
            for dep_kind in dep["dep_kinds"]:
                kinds.setdefault(dep_kind["kind"] or "normal", set()).add(names[dep["pkg"]])
    return Graph(homes, deps, files)


def check(graph: Graph) -> list[Finding]:
    findings = []
    for dep, path in sorted(graph.reach(DOMAIN, {"normal"}).items()):
        if dep.startswith(FORBIDDEN_IN_DOMAIN):
            findings.append(Finding("A001", f"{DOMAIN} reaches {dep}: {' -> '.join(path)}"))
    every_kind = {"normal", "dev", "build"}
    for crate, home in sorted(graph.homes.items()):
        direct = set().union(*graph.deps.get(crate, {}).values()) if graph.deps.get(crate) else set()
        for dep in sorted(direct):
            dep_home = graph.homes.get(dep)
            if home == "functions" and dep_home == "functions":
                findings.append(Finding("A002", f"function {crate} depends on function {dep}"))
            if home == "shared" and dep_home in ("functions", "tools"):
                findings.append(Finding("A003", f"library {crate} depends on {dep_home[:-1] if dep_home == 'functions' else 'tool'} {dep}"))
        if crate in GENERIC:
            for dep, path in sorted(graph.reach(crate, every_kind - {"dev"}).items()):
                if graph.homes.get(dep) == "shared" and dep not in GENERIC:
                    findings.append(Finding("A004", f"{crate} depends on {dep}: {' -> '.join(path)}"))
    for crate in sorted(GENERIC):
        for path, text in sorted(graph.files.get(crate, {}).items()):
            for number, line in enumerate(text.splitlines(), start=1):
                for word in PAYSAGA_WORDS:
                    if word in line.lower():
                        findings.append(Finding("A005", f"{crate} says \"{word}\" in {path}:{number}: {line.strip()}"))
    return findings


def broken_graph() -> Graph:
    """Each rule broken once, beside what is allowed (a function on the toolkit, the domain on
    serde, a tool on a function, a paysaga crate saying "payment")."""
    homes = {"paysaga-domain": "shared", "lambda-toolkit": "shared", "redact": "shared",
             "paysaga-services": "shared", "api": "functions", "admin-api": "functions",
             "local-lambda": "tools"}
    deps = {
        # tokio as a dev-dependency is allowed; through chrono's (made-up) shim it is not.
        "paysaga-domain": {"normal": {"redact", "serde", "async-trait", "chrono"}, "dev": {"tokio"}},
        "async-trait": {"normal": {"syn"}},
        "redact": {"normal": {"serde_json"}},
        "serde": {"normal": {"serde_derive"}},
        "paysaga-services": {"normal": {"paysaga-domain", "chrono"}, "dev": {"local-lambda"}},
        "chrono": {"normal": {"tokio-shim"}},
        "tokio-shim": {"normal": {"tokio"}},
        "lambda-toolkit": {"normal": {"redact", "tokio"}, "build": {"paysaga-domain"}},
        "api": {"normal": {"paysaga-services", "lambda-toolkit"}},
        "admin-api": {"normal": {"api", "lambda-toolkit"}},
        "local-lambda": {"normal": {"api"}},
    }
    files = {
        "lambda-toolkit": {
            "shared/lambda-toolkit/src/lib.rs": "//! SQS consumers, for orders as for anything else.\n",
            "shared/lambda-toolkit/README.md": "# lambda-toolkit\n\nA consumer of the Payments queue:\n",
        },
        "redact": {"shared/redact/src/lib.rs": "/// A field name (`amount`, `item_id`) is shown.\n"
                                               "/// And `WALLET_ID`.\n"},
        "paysaga-services": {"shared/services/src/lib.rs": "//! paysaga's payment saga.\n"},
    }
    return Graph(homes, deps, files)


def self_test() -> int:
    graph = broken_graph()
    fired = {f"{f.code} {f.message.split(':')[0]}" for f in check(graph)}
    expected = {
        "A001 paysaga-domain reaches tokio",
        "A001 paysaga-domain reaches tokio-shim",
        "A002 function admin-api depends on function api",
        "A003 library paysaga-services depends on tool local-lambda",
        "A004 lambda-toolkit depends on paysaga-domain",
        'A005 lambda-toolkit says "payment" in shared/lambda-toolkit/README.md',
        'A005 redact says "wallet" in shared/redact/src/lib.rs',
    }
    if fired != expected:
        print(f"architecture: self-test FAILED: did not fire: {sorted(expected - fired)}; "
              f"fired where it must not: {sorted(fired - expected)}", file=sys.stderr)
        return 1
    print(f"architecture: self-test passed: A001-A005 fire on each of the {len(expected)} broken places")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--self-test", action="store_true",
                        help="run the checks on a graph that breaks each rule; fail unless each fires")
    if parser.parse_args().self_test:
        return self_test()
    findings = check(graph_of_workspace())
    for finding in findings:
        print(finding, file=sys.stderr)
    if findings:
        print(f"architecture: {len(findings)} finding(s)", file=sys.stderr)
        return 1
    print(f"architecture: {DOMAIN} reaches no AWS SDK, Lambda runtime, HTTP stack or tokio; "
          "no function depends on another; the library crates depend on no function or tool; "
          "lambda-toolkit and redact on no paysaga crate, and their files say no word of paysaga's "
          f"domain ({', '.join(PAYSAGA_WORDS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
