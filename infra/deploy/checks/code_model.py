"""What a function's code does, read mechanically from its Rust source: the modules it reaches,
the AWS API operations they call (as IAM actions) and the CloudWatch metrics they write. (The
environment variables a function reads are not read from source: its binary says them,
`--describe-config`, see infra/deploy/checks/deploy.py.)

Used by infra/deploy/checks/iam.py and infra/deploy/checks/operations.py. Approximate by design, and only ever
in the generous direction (a module reached that does not really run adds calls and variables;
none is missed):

- Reachability is per module. A function reaches every `.rs` file of its own crate (tests and
  `#[cfg(test)]` modules excepted), then every module of the library crates under `shared/`
  that a reached file names through a path starting at one of them (`paysaga_domain::…`,
  `lambda_toolkit::…`), and from there every module named through such a path, `crate::…`,
  `super::…`, `self::…` or a child module's name. A name re-exported by a module
  (`pub use child::Name`, `pub use other_crate::module::*`) leads on to the module that
  defines it.
- An AWS operation is called where a reached file that names the SDK crate (`aws_sdk_dynamodb`,
  `aws_sdk_sqs`, `aws_sdk_eventbridge`) calls the fluent builder method of one of that SDK's
  operations (`.put_item()`); the operations are the SDK crate's own `src/operation/*` modules
  (found with `cargo metadata`), so no list of them is kept here. IAM authorises a few
  operations under another action: see `IAM_ACTION_OF` below.
- A metric is written where a reached item calls the collector of `lambda_toolkit::metrics`:
  `.count(name, dimensions, n)`, `.gauge(name, dimensions, value, unit)` or
  `.observe(name, dimensions, value, unit)`. The name is a string
  literal, a variable bound by a `let` in the same item (every CamelCase literal of its
  expression: `let metric = match … { … => "EventsAppended", … }`), or a parameter of the
  enclosing `fn`, read at that function's call sites in the same file (`add_to(metrics,
  "MessagesReceived", …)`). The dimensions are `&[("queue", …), …]` written there or bound by a
  `let` (their names only; `service` is on every document). A call site read no such way is
  reported (`metrics_unread`), never guessed. The namespace and the `service` dimension's value
  are the arguments the crate's code gives `MetricsSink::stdout(namespace, service)` (or
  `MetricsSink::new`'s first two): the service a string literal, the namespace a literal or the
  name of a `const … : &str = "…"` of a reached item (paysaga's `paysaga_aws::METRICS_NAMESPACE`).
  A namespace read neither way is reported too. `POWERTOOLS_METRICS_NAMESPACE` in a function's
  environment overrides it, as `MetricsSink::stdout` does (operations.py reads that).
- The events a function publishes are those its own crate's code lists to
  `EventBridgePublisher::from_config(config, bus, &[A, B])` (consts of the domain's events.rs;
  the publisher refuses any other type at run time), each with the source `EVENT_TYPES` gives
  it. A list read no other way is reported (`publishes_unread`).
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _library_crates() -> dict[str, Path]:
    """The library crates under shared/: their names as Rust writes them -> their src/."""
    import tomllib
    crates = {}
    for manifest in sorted((ROOT / "shared").glob("*/Cargo.toml")):
        name = tomllib.loads(manifest.read_text())["package"]["name"]
        crates[name.replace("-", "_")] = manifest.parent / "src"
    return crates


# A module: (crate, its path inside the crate), e.g. ("paysaga_services", ["saga"]).
SHARED_CRATES = _library_crates()
METRICS_RS = SHARED_CRATES["lambda_toolkit"] / "metrics.rs"

# SDK crate -> IAM service prefix.
SDK_SERVICES = {
    "aws-sdk-dynamodb": "dynamodb",
    "aws-sdk-sqs": "sqs",
    "aws-sdk-eventbridge": "events",
}

# IAM authorises these operations under other actions (AWS Service Authorization Reference:
# DynamoDB "Actions, resources, and condition keys"; SQS "batch actions").
# TransactWriteItems / TransactGetItems have no IAM action of their own: each item is
# authorised as the single-item operation it holds (see TRANSACT_ITEM_BUILDERS).
IAM_ACTION_OF = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "dynamodb:TransactGetItems": "dynamodb:GetItem",
}
TRANSACT_OPERATIONS = {"dynamodb:TransactWriteItems"}
# A transaction item's builder -> the action IAM checks for it.
TRANSACT_ITEM_BUILDERS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}

@dataclass(frozen=True)
class MetricWrite:
    """A metric a function writes: its name and its dimensions besides `service`."""
    name: str
    dimensions: frozenset[str]


@dataclass
class CodeFacts:
    crate: str
    files: list[Path] = field(default_factory=list)  # every reached file
    calls: dict[str, set[Path]] = field(default_factory=dict)  # IAM action -> files calling it
    metrics: set[MetricWrite] = field(default_factory=set)
    metrics_unread: list[str] = field(default_factory=list)  # call sites not read: file: call
    service: str | None = None  # the `service` dimension of its metrics, when it writes any
    namespace: str | None = None  # the namespace its code names for them (None: not read)
    # The events it publishes, (source, detail-type), as its own code declares them to
    # paysaga_aws::EventBridgePublisher (which refuses any other); None: it builds no publisher.
    publishes: set[tuple[str, str]] | None = None
    publishes_unread: list[str] = field(default_factory=list)  # declarations not read


# --------------------------------------------------------------------------- source text

def code_of(path: Path) -> str:
    """The file's code without comments and without its `#[cfg(test)]` modules."""
    text = path.read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"(^|[\s;{}(),])//[^\n]*", r"\1", text, flags=re.M)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand_use_tree(tree: str) -> list[list[str]]:
    """`a::{b, c::{d, self}}` -> [[a, b], [a, c, d], [a, c]] (renames and globs dropped)."""
    tree = re.sub(r"\s+", "", tree)

    def split_top(s: str) -> list[str]:
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        return parts

    def expand(s: str, prefix: list[str]) -> list[list[str]]:
        if "{" in s:
            head, rest = s.split("{", 1)
            head_parts = [p for p in head.split("::") if p]
            inner = rest[: rest.rfind("}")]
            found = []
            for part in split_top(inner):
                found += expand(part, prefix + head_parts)
            return found
        parts = [p for p in s.split("::") if p]
        if parts and parts[-1] == "self":
            parts = parts[:-1]
        if parts and parts[-1] == "*":
            parts = parts[:-1]
        return [prefix + parts]

    return expand(tree, [])


def use_trees(code: str) -> list[list[str]]:
    """Every path of every private `use` declaration (renames `as x` removed before expanding).
    Re-exports (`pub use`) are followed only when a reached path names what they export."""
    paths = []
    for m in re.finditer(r"(?<!pub )(?<!\) )\buse\s+([^;]+);", code):
        tree = re.sub(r"\s+as\s+\w+", "", m.group(1))
        paths += expand_use_tree(tree)
    return paths


def inline_paths(code: str, roots: set[str]) -> list[list[str]]:
    """Paths written in code (not in a `use`) that start at one of `roots`: `crate::a::B`."""
    found = []
    pattern = r"(?<![\w:])((?:%s)(?:::\w+)+)" % "|".join(map(re.escape, sorted(roots)))
    for m in re.finditer(pattern, code):
        found.append(m.group(1).split("::"))
    return found


# --------------------------------------------------------------------------- modules of shared/

Module = tuple[str, tuple[str, ...]]


def module_file(crate: str, parts: list[str]) -> Path | None:
    """The file of module `crate::parts` of a shared/ crate (None when it is not a module)."""
    src = SHARED_CRATES[crate]
    if not parts:
        return src / "lib.rs"
    base = src.joinpath(*parts)
    for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
        if candidate.is_file():
            return candidate
    return None


def module_of_file(path: Path) -> tuple[str, list[str]]:
    for crate, src in SHARED_CRATES.items():
        if path.is_relative_to(src):
            parts = list(path.relative_to(src).with_suffix("").parts)
            if parts == ["lib"]:
                return crate, []
            if parts and parts[-1] == "mod":
                parts = parts[:-1]
            return crate, parts
    raise ValueError(f"{path} is in no shared/ crate")


def child_modules(path: Path) -> set[str]:
    return set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", code_of(path), flags=re.M))


def resolve(crate: str, parts: list[str], seen: set[tuple[str, ...]]) -> set[Path]:
    """The shared/ module files a crate-absolute path (`crate`, then `parts`) leads to."""
    key = (crate, *parts)
    if key in seen:
        return set()
    seen.add(key)
    reached: set[Path] = set()
    module: list[str] = []
    for i, part in enumerate(parts):
        if module_file(crate, module + [part]) is not None:
            module.append(part)
            continue
        # `part` is an item of `module`: defined there, or where a re-export leads.
        here = module_file(crate, module)
        assert here is not None
        targets = reexports(here, crate, module, part)
        if not targets:
            reached.add(here)
        for target_crate, target in targets:
            reached |= resolve(target_crate, target + parts[i + 1:], seen)
        return reached
    here = module_file(crate, module)
    if here is not None:
        reached.add(here)
    return reached


def absolute(path: list[str], crate: str, module: list[str],
             children: set[str]) -> tuple[str, list[str]] | None:
    """A path as written in module `module` of `crate` -> (crate, crate-absolute parts), or
    None if it leads outside shared/."""
    if not path:
        return None
    head = path[0]
    if head in SHARED_CRATES:
        return head, path[1:]
    if head == "crate":
        return crate, path[1:]
    if head == "self":
        return crate, module + path[1:]
    if head == "super":
        up = module[:]
        rest = path
        while rest and rest[0] == "super":
            up = up[:-1]
            rest = rest[1:]
        return crate, up + rest
    if head in children:
        return crate, module + path
    return None


def reexports(path: Path, crate: str, module: list[str], name: str) -> list[tuple[str, list[str]]]:
    """Crate-absolute paths that `pub use …::name` (or `pub use …::*`) in module `module`
    brings in."""
    code = code_of(path)
    children = child_modules(path)
    targets = []
    for m in re.finditer(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", code):
        tree = re.sub(r"\s+as\s+\w+", "", m.group(1))
        for used in expand_use_tree(tree):
            abs_path = absolute(used, crate, module, children)
            if abs_path is None:
                continue
            if used[-1] == name:
                targets.append(abs_path)
            elif module_file(*abs_path) is not None:
                # A glob (`pub use other::module::*`, expanded to the module): `name` may be
                # one of its items.
                targets.append((abs_path[0], abs_path[1] + [name]))
    return targets


def shared_references(code: str, crate: str | None, module: list[str] | None,
                      children: set[str]) -> list[tuple[str, list[str]]]:
    """Crate-absolute shared/ paths named by a file: from a function crate (`crate` None: paths
    that start at a shared/ crate) or from a shared/ crate itself (those, `crate::…`,
    `super::…`, `self::…`, children)."""
    found = []
    roots = set(SHARED_CRATES)
    if crate is not None:
        roots |= {"crate", "super", "self"} | children
    for used in use_trees(code) + inline_paths(code, roots):
        abs_path = absolute(used, crate or "", module or [], children) if crate is not None \
            else (used[0], used[1:]) if used and used[0] in SHARED_CRATES else None
        if abs_path is not None:
            found.append(abs_path)
    return found


# --------------------------------------------------------------------------- SDK operations

@lru_cache(maxsize=1)
def sdk_operations() -> dict[str, dict[str, str]]:
    """SDK crate name (as written in Rust, aws_sdk_x) -> {fluent method: IAM action}."""
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    found: dict[str, dict[str, str]] = {}
    for package in meta["packages"]:
        service = SDK_SERVICES.get(package["name"])
        if service is None:
            continue
        ops_dir = Path(package["manifest_path"]).parent / "src" / "operation"
        ops = {}
        for op in sorted(p.name for p in ops_dir.iterdir() if p.is_dir()):
            pascal = "".join(w.capitalize() for w in op.split("_"))
            ops[op] = f"{service}:{pascal}"
        found[package["name"].replace("-", "_")] = ops
    missing = {n.replace("-", "_") for n in SDK_SERVICES} - set(found)
    if missing:
        raise RuntimeError(f"cargo metadata does not list {', '.join(sorted(missing))}")
    return found


def calls_in(code: str, file_code: str) -> set[str]:
    """IAM actions of the AWS operations `code` (an item of a file: `file_code`) calls."""
    actions: set[str] = set()
    for crate, ops in sdk_operations().items():
        if crate not in file_code:
            continue
        for method in re.findall(r"\.(\w+)\(\s*\)", code):
            action = ops.get(method)
            if action is None:
                continue
            if action in TRANSACT_OPERATIONS:
                for builder, item_action in TRANSACT_ITEM_BUILDERS.items():
                    if re.search(rf"\b{builder}::builder\(\)", file_code):
                        actions.add(item_action)
                continue
            actions.add(IAM_ACTION_OF.get(action, action))
    return actions


# --------------------------------------------------------------------------- metrics written

METRIC_NAME = re.compile(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)+")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
# The collector's methods and how many arguments each takes (lambda_toolkit::metrics::Metrics).
METRIC_METHODS = {"count": 3, "gauge": 4, "observe": 4}


def call_arguments(code: str, open_paren: int) -> tuple[list[str], int]:
    """The top-level arguments of the call whose `(` is at `open_paren`, and the index after its `)`."""
    args, depth, start, i = [], 0, open_paren + 1, open_paren
    while i < len(code):
        ch = code[i]
        if ch == '"':
            i = STRING.match(code, i).end() if STRING.match(code, i) else i + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                last = code[start:i].strip()
                return (args + [last]) if last else args, i + 1  # a trailing comma ends no argument
        elif ch == "," and depth == 1:
            args.append(code[start:i].strip())
            start = i + 1
        i += 1
    return args, len(code)


def let_expression(code: str, name: str, before: int) -> str | None:
    """The expression of the last `let` before `before` that binds `name` (alone or in a tuple)."""
    found = None
    for m in re.finditer(r"\blet\s+(?:mut\s+)?(\(([^)]*)\)|\w+)\s*(?::[^=;]+)?=", code[:before]):
        bound = re.findall(r"\w+", m.group(1))
        if name not in bound:
            continue
        depth, i = 0, m.end()
        while i < len(code) and not (code[i] == ";" and depth == 0):
            depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(code[i], 0)
            i += 1
        found = code[m.end():i]
    return found


def enclosing_fn(code: str, at: int) -> tuple[str, list[str]] | None:
    """The name and parameter names of the last `fn` declared before `at`."""
    last = None
    for m in re.finditer(r"\bfn\s+(\w+)\s*(?:<[^>{]*>)?\s*\(", code[:at]):
        last = m
    if last is None:
        return None
    params, _ = call_arguments(code, last.end() - 1)
    names = [re.match(r"(?:mut\s+)?(\w+)\s*:", p).group(1) for p in params if re.match(r"(?:mut\s+)?\w+\s*:", p)]
    return last.group(1), names


def metric_names(arg: str, code: str, at: int, file_code: str, depth: int = 0) -> set[str] | None:
    """The metric names an argument can hold, or None when it cannot be read."""
    arg = arg.strip()
    if m := STRING.fullmatch(arg):
        return {m.group(1)}
    if not re.fullmatch(r"\w+", arg) or depth > 3:
        return None
    if (bound := let_expression(code, arg, at)) is not None:
        names = {s for s in STRING.findall(bound) if METRIC_NAME.fullmatch(s)}
        return names or None
    enclosing = enclosing_fn(code, at)
    if enclosing is None or arg not in enclosing[1]:
        return None
    fn_name, params = enclosing
    index = params.index(arg)
    names: set[str] = set()
    for call in re.finditer(rf"(?<!fn )\b{re.escape(fn_name)}\(", file_code):
        args, _ = call_arguments(file_code, call.end() - 1)
        if len(args) != len(params):
            continue
        found = metric_names(args[index], file_code, call.start(), file_code, depth + 1)
        if found is None:
            return None
        names |= found
    return names or None


def dimension_names(arg: str, code: str, at: int) -> frozenset[str] | None:
    """The dimension names of a `&[("queue", …), …]` argument (or a `let` binding one)."""
    arg = arg.strip().lstrip("&").strip()
    if re.fullmatch(r"\w+", arg):
        bound = let_expression(code, arg, at)
        if bound is None:
            return None
        arg = bound.strip().lstrip("&").strip()
    if not (arg.startswith("[") and arg.endswith("]")):
        return None
    names = set()
    for element in call_arguments(arg, 0)[0]:
        m = re.match(r'\(\s*"(\w+)"\s*,', element)
        if m is None:
            return None  # a dimension whose name is not a literal
        names.add(m.group(1))
    return frozenset(names) - {"service"}


def metric_writes(code: str, file_code: str) -> tuple[set[MetricWrite], list[str]]:
    """The metrics an item's code writes, and the collector calls it makes that cannot be read."""
    written: set[MetricWrite] = set()
    unread: list[str] = []
    for m in re.finditer(r"\.(count|gauge|observe)\(", code):
        args, end = call_arguments(code, m.end() - 1)
        if len(args) != METRIC_METHODS[m.group(1)]:
            continue  # Iterator::count() and the like
        names = metric_names(args[0], code, m.start(), file_code)
        dimensions = dimension_names(args[1], code, m.start())
        if names is None or dimensions is None:
            unread.append(re.sub(r"\s+", " ", code[m.start():end]))
            continue
        written |= {MetricWrite(name, dimensions) for name in names}
    return written, unread


def metrics_sink(code: str) -> tuple[str, str] | None:
    """(the namespace argument as written, the service) of the first `MetricsSink::stdout(namespace,
    service)` or `MetricsSink::new(namespace, service, writer)` in `code` whose service is a literal."""
    for call in re.finditer(r"\bMetricsSink::(stdout|new)\(", code):
        args, _ = call_arguments(code, call.end() - 1)
        if len(args) == {"stdout": 2, "new": 3}[call.group(1)] and (service := STRING.fullmatch(args[1])):
            return args[0], service.group(1)
    return None


def str_const(name: str, code: str) -> str | None:
    """The value of `const name: &str = "…"` in `code`."""
    m = re.search(rf'\bconst\s+{name}\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]+)"', code)
    return m.group(1) if m else None


def namespace_of(arg: str, reached: list[str]) -> str | None:
    """A namespace argument's value: a string literal, or a `const` (by its path's last name)
    that one of the `reached` items defines."""
    if literal := STRING.fullmatch(arg):
        return literal.group(1)
    if name := re.fullmatch(r"(?:\w+::)*([A-Z][A-Z0-9_]*)", arg):
        return next((value for text in reached if (value := str_const(name.group(1), text))), None)
    return None


EVENTS_RS = SHARED_CRATES["paysaga_domain"] / "events.rs"


def event_types() -> dict[str, str]:
    """Every event type paysaga defines, detail-type -> source: the domain's `EVENT_TYPES`
    (pairs of consts of its events.rs)."""
    code = code_of(EVENTS_RS)
    table = re.search(r"\bconst\s+EVENT_TYPES\s*:[^=]*=\s*\[(.*?)\];", code, re.S)
    if table is None:
        raise RuntimeError(f"{EVENTS_RS} defines no EVENT_TYPES")
    types = {}
    for source, detail_type in re.findall(r"\(\s*(\w+)\s*,\s*(\w+)\s*\)", table.group(1)):
        source_value, type_value = str_const(source, code), str_const(detail_type, code)
        if source_value is None or type_value is None:
            raise RuntimeError(f"{EVENTS_RS}: EVENT_TYPES names {source}/{detail_type}, not string consts")
        types[type_value] = source_value
    return types


def publisher_declarations(code: str) -> list[str]:
    """The `publishes` argument (the third) of each `EventBridgePublisher::from_config(…)` or
    `EventBridgePublisher::new(…)` call in `code`, as written."""
    declared = []
    for call in re.finditer(r"\bEventBridgePublisher::(?:from_config|new)\(", code):
        args, _ = call_arguments(code, call.end() - 1)
        if len(args) == 3:
            declared.append(args[2])
    return declared


def published_types(arg: str, reached: list[str]) -> set[str] | None:
    """The detail-types of a `&[A, B, …]` argument whose names are reached string consts."""
    listed = re.fullmatch(r"&\s*\[(.*)\]", re.sub(r"//[^\n]*", "", arg).strip(), re.S)
    if listed is None:
        return None
    names = [name.strip() for name in listed.group(1).split(",") if name.strip()]
    values = {namespace_of(name, reached) for name in names}
    return None if None in values else values


def namespace_variable() -> str:
    """The environment variable that overrides a function's namespace, as the toolkit's
    metrics.rs names it."""
    variable = str_const("NAMESPACE_VARIABLE", code_of(METRICS_RS))
    if not variable:
        raise RuntimeError(f"{METRICS_RS} defines no NAMESPACE_VARIABLE")
    return variable


# --------------------------------------------------------------------------- per function

def crate_files(crate_dir: Path) -> list[Path]:
    return sorted(p for p in (crate_dir / "src").rglob("*.rs") if "tests" not in p.parts)


def top_level_items(code: str) -> list[tuple[set[str], str]]:
    """A file's top-level items: (the names that reach it, its text). An `impl` is reached by its
    type's name (trait impls included), a `fn`, type, const or inline `mod` by its own name.
    `use` and `mod x;` declarations are not items here (modules are resolved separately)."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(code):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                items.append(code[start:i + 1])
                start = i + 1
        elif ch == ";" and depth == 0:
            items.append(code[start:i + 1])
            start = i + 1
    found = []
    for text in items:
        header = text.split("{", 1)[0]
        header = re.sub(r"#!?\[[^\]]*\]", " ", header)
        if re.match(r"\s*(pub(\([^)]*\))?\s+)?(use\b|mod\s+\w+\s*;|extern\s+crate)", header if "{" in text else text):
            continue
        names: set[str] = set()
        impl = re.search(r"\bimpl\b(?:\s*<[^{]*?>)?\s+(?:[\w:<>, ]+?\s+for\s+)?([\w:]+)", header)
        if impl:
            names.add(impl.group(1).split("::")[-1])
        else:
            names |= set(re.findall(r"\b(?:fn|struct|enum|trait|const|static|type|mod|union|macro_rules!)\s+(\w+)", header))
        if names:
            found.append((names, text))
    return found


def default_features(crate_dir: Path) -> set[str]:
    """The features a plain `cargo lambda build` of the crate enables (its `default`, closed)."""
    import tomllib
    features = tomllib.loads((crate_dir / "Cargo.toml").read_text()).get("features", {})
    enabled, todo = set(), list(features.get("default", []))
    while todo:
        name = todo.pop()
        if name in features and name not in enabled:
            enabled.add(name)
            todo += features[name]
    return enabled


GATE = re.compile(r'#\[cfg\(feature\s*=\s*"([^"]+)"\)\]')


def gated_off(item_text: str, enabled: set[str]) -> bool:
    """An item behind `#[cfg(feature = "x")]` that the deployed build does not enable (only that
    plain form is read; `not`, `any`, `all` keep the item: generous, as everywhere here)."""
    header = item_text.split("{", 1)[0]
    return any(feature not in enabled for feature in GATE.findall(header))


def gated_modules(code: str, enabled: set[str]) -> set[str]:
    """Modules declared `#[cfg(feature = "x")] mod name;` with x not enabled."""
    return {m.group(2) for m in re.finditer(
        r'#\[cfg\(feature\s*=\s*"([^"]+)"\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', code)
        if m.group(1) not in enabled}


def identifiers(code: str) -> set[str]:
    return set(re.findall(r"\b[A-Za-z_]\w*\b", code))


def facts_of(crate_dir: Path) -> CodeFacts:
    """Modules first (which shared/ files the crate can reach through paths), then items: the
    crate's own code is reached whole; an item of a reachable shared/ file is reached when a
    reached item names it (its fn, type or, for an impl, its type), until nothing new is."""
    facts = CodeFacts(crate=crate_dir.name)
    own_features = default_features(crate_dir)
    shared_features = {crate: default_features(src.parent) for crate, src in SHARED_CRATES.items()}
    own = crate_files(crate_dir)
    off = set()
    for path in own:
        off |= gated_modules(code_of(path), own_features)
    own = [p for p in own if p.stem not in off and p.parent.name not in off]
    queue: list[tuple[Path, tuple[str, list[str]] | None]] = [(p, None) for p in own]
    reachable: set[Path] = set()
    seen_paths: set[tuple[str, ...]] = set()
    while queue:
        path, module = queue.pop()
        if path in reachable:
            continue
        reachable.add(path)
        code = code_of(path)
        children = child_modules(path) if module is not None else set()
        crate, parts = module if module is not None else (None, None)
        for ref_crate, ref in shared_references(code, crate, parts, children):
            for reached in resolve(ref_crate, ref, seen_paths):
                if reached not in reachable:
                    queue.append((reached, module_of_file(reached)))

    reached_text: list[tuple[Path, str]] = [
        (p, text) for p in own for _, text in top_level_items(code_of(p))
        if not gated_off(text, own_features)]
    pending = [(path, names, text) for path in sorted(reachable - set(own))
               for names, text in top_level_items(code_of(path))
               if not gated_off(text, shared_features[module_of_file(path)[0]])]
    names_seen: set[str] = set()
    for _, text in reached_text:
        names_seen |= identifiers(text)
    changed = True
    while changed:
        changed = False
        still = []
        for path, names, text in pending:
            if names & names_seen:
                reached_text.append((path, text))
                names_seen |= identifiers(text)
                changed = True
            else:
                still.append((path, names, text))
        pending = still

    sink, sink_at = None, None
    for path, text in reached_text:
        for action in calls_in(text, code_of(path)):
            facts.calls.setdefault(action, set()).add(path)
        # The collector's own file forwards calls (`InvocationMetrics` to `Metrics`): no write.
        written, unread = metric_writes(text, code_of(path)) if path != METRICS_RS else (set(), [])
        facts.metrics |= written
        facts.metrics_unread += [f"{path.relative_to(ROOT)}: {call}" for call in unread]
        if sink is None and (sink := metrics_sink(text)):
            sink_at = path
    if sink is not None:
        namespace, facts.service = sink
        facts.namespace = namespace_of(namespace, [text for _, text in reached_text])
        if facts.namespace is None:
            facts.metrics_unread.append(f"{sink_at.relative_to(ROOT)}: the namespace {namespace} of "
                                        f"MetricsSink (neither a literal nor a reached const)")
    texts = [text for _, text in reached_text]
    types = event_types()
    for path in own:
        for declared in publisher_declarations(code_of(path)):
            published = published_types(declared, texts)
            unknown = sorted(published - types.keys()) if published is not None else []
            if published is None or unknown:
                facts.publishes_unread.append(f"{path.relative_to(ROOT)}: publishes {declared} "
                                              "(not a list of reached detail-type consts of EVENT_TYPES)")
                continue
            facts.publishes = (facts.publishes or set()) | {(types[t], t) for t in published}
    facts.files = sorted({path for path, _ in reached_text})
    return facts


@lru_cache(maxsize=1)
def target_directory() -> Path:
    """cargo's target directory (cargo metadata: CARGO_TARGET_DIR honoured)."""
    out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return Path(json.loads(out)["target_directory"])


def function_crates() -> dict[str, Path]:
    """Binary name -> crate directory, for every crate under functions/ (each crate builds one
    binary named like the crate: src/main.rs, or [[bin]] names in its Cargo.toml)."""
    found = {}
    for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        text = manifest.read_text()
        bins = re.findall(r'\[\[bin\]\][^\[]*?name\s*=\s*"([^"]+)"', text, flags=re.S)
        package = re.search(r'^\s*name\s*=\s*"([^"]+)"', text, flags=re.M)
        if not bins and package and (manifest.parent / "src" / "main.rs").is_file():
            bins = [package.group(1)]
        for name in bins:
            found[name] = manifest.parent
    return found


if __name__ == "__main__":
    for binary, crate in function_crates().items():
        facts = facts_of(crate)
        print(f"{binary}:")
        print(f"  modules: {', '.join(str(p.relative_to(ROOT)) for p in facts.files)}")
        print(f"  calls:   {', '.join(sorted(facts.calls))}")
        if facts.service:
            shown = (f"{w.name}({', '.join(sorted(w.dimensions))})" for w in sorted(facts.metrics, key=lambda w: w.name))
            print(f"  metrics (namespace={facts.namespace}, service={facts.service}): {', '.join(shown)}")
        for call in facts.metrics_unread:
            print(f"  metric call not read: {call}")
