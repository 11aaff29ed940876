"""Fixtures of the template tests: template.yaml raw (as written, parsed by cfn-lint's own
decoder), rendered (parameter references to ManagedUsers replaced by a user list, so that
anything that would grow with the users shows) and translated (the SAM transform applied: the
CloudFormation that would be deployed). render() and translate() are also used directly with
no user, 2 and 200 users."""

import copy
import json
import os

import pytest
from cfnlint.decode import decode

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# KEYROT_TEMPLATE lets a mutated copy (or the old per-user template) be checked, to see that
# the tests can fail.
TEMPLATE = os.environ.get("KEYROT_TEMPLATE", os.path.join(ROOT, "template.yaml"))

# What a deployment passes for the parameters that have no default (docs/deploy.md).
DEPLOY_PARAMETERS = {
    "AdminEmail": "admin@example.com",
    "AllowedCidrs": "203.0.113.0/24,2001:db8::/32",
    "DefaultClientCidrs": "203.0.113.0/24",
    "EligibleUserPath": "/keyrot-managed/",
}

# Users with characters IAM allows but logical ids do not.
ODD_USERS = ["alice", "ci-bot", "svc.backup"]


def load_raw():
    template, matches = decode(TEMPLATE)
    assert not matches, f"template.yaml does not parse: {matches}"
    # cfn-lint's node types carry positions; plain JSON values compare and copy simply.
    return json.loads(json.dumps(template))


def _substitute(node, parameters):
    if isinstance(node, list):
        return [_substitute(item, parameters) for item in node]
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in parameters:
            return parameters[node["Ref"]]
        return {k: _substitute(v, parameters) for k, v in node.items()}
    return node


def render(raw, users):
    """The template with ManagedUsers = users wherever it is referenced: the comma-separated
    text for a String parameter (what CloudFormation substitutes), the list for a list type."""
    template = copy.deepcopy(raw)
    value = ",".join(users) if raw["Parameters"]["ManagedUsers"]["Type"] == "String" else users
    for section in ("Resources", "Outputs"):
        template[section] = _substitute(template.get(section, {}), {"ManagedUsers": value})
    return template


class _NoManagedPolicies:
    # The functions use explicit roles, so SAM never needs to look up a managed policy.
    def load(self):
        return {}


def translate(rendered):
    from samtranslator.translator.transform import transform

    # The translator wants a region for ARNs it builds; any region will do for these checks.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    # The parameters without a default: a deployment must name them (AllowedCidrs and
    # DefaultClientCidrs too: no network is allowed by default; EligibleUserPath: no user is
    # eligible by default).
    parameters = dict(DEPLOY_PARAMETERS)
    template = copy.deepcopy(rendered)
    # What `sam package` does to local code paths before the transform runs.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/" + resource["Properties"]["CodeUri"]
    return transform(template, parameters, _NoManagedPolicies())


@pytest.fixture(scope="session")
def raw():
    return load_raw()


@pytest.fixture(scope="session")
def rendered(raw):
    return render(raw, ODD_USERS)


@pytest.fixture(scope="session")
def translated(rendered):
    return translate(rendered)
