"""Fn::ForEach expansion of template.yaml as CloudFormation's AWS::LanguageExtensions transform
documents it: ${Id} becomes the value, &{Id} the value without non-alphanumerics, in keys and
bodies alike. Used by the template tests, and run as a script to write the expanded template
for checkov, which skips resources inside Fn::ForEach when it scans template.yaml itself.

    python tools/template_tests/expansion.py OUT.json [USER ...]
"""

import copy
import json
import os
import re
import sys

from cfnlint.decode import decode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# KEYROT_TEMPLATE lets a mutated copy be checked (to see that the tests can fail).
TEMPLATE = os.environ.get("KEYROT_TEMPLATE", os.path.join(ROOT, "template.yaml"))

# Users with characters IAM allows but logical ids do not: the loop must still wire up.
ODD_USERS = ["alice", "ci-bot", "svc.backup"]


def load_raw():
    template, matches = decode(TEMPLATE)
    assert not matches, f"template.yaml does not parse: {matches}"
    # cfn-lint's node types carry positions; plain JSON values compare and copy simply.
    return json.loads(json.dumps(template))


def _substitute(node, identifier, value):
    if isinstance(node, str):
        plain = re.sub(r"[^A-Za-z0-9]", "", value)
        return node.replace("${%s}" % identifier, value).replace("&{%s}" % identifier, plain)
    if isinstance(node, list):
        return [_substitute(item, identifier, value) for item in node]
    if isinstance(node, dict):
        if node == {"Ref": identifier}:
            return value
        return {
            _substitute(k, identifier, value): _substitute(v, identifier, value)
            for k, v in node.items()
        }
    return node


def _expand_section(section, parameters):
    out = {}
    for key, body in section.items():
        if not key.startswith("Fn::ForEach::"):
            out[key] = body
            continue
        identifier, collection, fragment = body
        if isinstance(collection, dict):
            collection = parameters[collection["Ref"]]
        for value in collection:
            for k, v in _substitute(fragment, identifier, value).items():
                assert k not in out, f"Fn::ForEach produced duplicate key {k}"
                out[k] = v
    return out


def _resolve_getatt_subs(node):
    # LanguageExtensions accepts intrinsics as Fn::GetAtt's logical name; after the loop they
    # are constant Fn::Sub strings.
    if isinstance(node, list):
        return [_resolve_getatt_subs(item) for item in node]
    if isinstance(node, dict):
        getatt = node.get("Fn::GetAtt")
        if isinstance(getatt, list) and isinstance(getatt[0], dict) and "Fn::Sub" in getatt[0]:
            name = getatt[0]["Fn::Sub"]
            assert "${" not in name, f"unresolved logical name {name}"
            return {"Fn::GetAtt": [name, getatt[1]]}
        return {k: _resolve_getatt_subs(v) for k, v in node.items()}
    return node


def expand(raw, users):
    template = copy.deepcopy(raw)
    parameters = {"ManagedUsers": users}
    template["Resources"] = _resolve_getatt_subs(_expand_section(template["Resources"], parameters))
    template["Outputs"] = _resolve_getatt_subs(_expand_section(template.get("Outputs", {}), parameters))
    template["Transform"] = [t for t in template["Transform"] if t != "AWS::LanguageExtensions"]
    return template


if __name__ == "__main__":
    out_path, users = sys.argv[1], sys.argv[2:] or ODD_USERS
    with open(out_path, "w", encoding="utf-8") as out:
        json.dump(expand(load_raw(), users), out, indent=1)
