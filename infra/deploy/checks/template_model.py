"""infra/template.yaml as the checks read it: as written, and as SAM turns it into plain
CloudFormation (aws-sam-translator, offline: the same translation `sam deploy` runs, so what SAM
adds - a generated role, a managed policy, an event source mapping - is what the checks see)."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "infra" / "template.yaml"


class TemplateError(Exception):
    pass


def plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def load(path: Path) -> dict:
    template, matches = decode(str(path))
    if matches or template is None:
        raise TemplateError(f"cannot parse {path}: " + "; ".join(str(m) for m in matches))
    return plain(template)


def transformed(template: dict) -> dict:
    """The template after SAM's transform. CodeUri must be an S3 location for the translator
    (sam deploy uploads the local folder first): a placeholder stands in for it."""
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self) -> dict:
            return {}

    doc = copy.deepcopy(template)
    for res in doc.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res.setdefault("Properties", {})["CodeUri"] = "s3://placeholder-bucket/function.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")  # the translator's pseudo parameters
    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # its unpublished-metrics note
    try:
        return plain(transform(doc, {}, NoManagedPolicies()))
    except Exception as error:  # the translator's own exception types; their text is the finding
        raise TemplateError(f"SAM cannot translate the template: {error}") from error


def functions(template: dict) -> dict[str, dict]:
    """SAM functions (as written) with the Globals merged in, SAM's way."""
    defaults = template.get("Globals", {}).get("Function", {})

    def merge(base: Any, own: Any) -> Any:
        if isinstance(base, dict) and isinstance(own, dict):
            merged = dict(base)
            for key, value in own.items():
                merged[key] = merge(base[key], value) if key in base else value
            return merged
        if isinstance(base, list) and isinstance(own, list):
            return base + own
        return own

    return {
        lid: merge(defaults, res.get("Properties", {}))
        for lid, res in template["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def binary_of(code_uri: Any) -> str | None:
    """`../target/lambda/<bin>/` -> <bin> (what `cargo lambda build` writes there)."""
    if not isinstance(code_uri, str):
        return None
    m = re.fullmatch(r"\.\./target/lambda/([A-Za-z0-9_-]+)/?", code_uri)
    return m.group(1) if m else None


def getatt(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and len(value) == 1 and "Fn::GetAtt" in value:
        arg = value["Fn::GetAtt"]
        lid, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
        return str(lid), str(attr)
    return None


def ref(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and "Ref" in value and isinstance(value["Ref"], str):
        return value["Ref"]
    return None


def sub_text(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and "Fn::Sub" in value:
        arg = value["Fn::Sub"]
        return str(arg[0] if isinstance(arg, list) else arg)
    return None


def references(value: Any) -> set[str]:
    """Logical ids and parameters a value names (Ref, GetAtt, Sub's ${...}); pseudo
    parameters (AWS::...) excluded."""
    found: set[str] = set()
    if isinstance(value, dict):
        if (r := ref(value)) is not None:
            found.add(r)
        elif (g := getatt(value)) is not None:
            found.add(g[0])
        elif "Fn::Sub" in value and len(value) == 1:
            arg = value["Fn::Sub"]
            text, variables = (arg[0], arg[1]) if isinstance(arg, list) else (arg, {})
            for name in re.findall(r"\$\{([^!}][^}]*)\}", str(text)):
                name = name.split(".", 1)[0]
                if name not in variables:
                    found.add(name)
            found |= references(variables)
        else:
            for item in value.values():
                found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return {r for r in found if not r.startswith("AWS::")}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
