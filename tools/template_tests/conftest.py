"""Fixtures of the template tests: template.yaml raw (as written, parsed by cfn-lint's own
decoder), expanded (Fn::ForEach applied for users with punctuation, see expansion.py) and
translated (the SAM transform applied to the expanded template: the CloudFormation that
would be deployed)."""

import copy
import os

import pytest

from expansion import ODD_USERS, expand, load_raw


class _NoManagedPolicies:
    # The functions use explicit roles, so SAM never needs to look up a managed policy.
    def load(self):
        return {}


def translate(expanded):
    from samtranslator.translator.transform import transform

    # The translator wants a region for ARNs it builds; any region will do for these checks.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    parameters = {"AdminEmail": "admin@example.com"}
    template = copy.deepcopy(expanded)
    # What `sam package` does to local code paths before the transform runs.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/" + resource["Properties"]["CodeUri"]
    return transform(template, parameters, _NoManagedPolicies())


@pytest.fixture(scope="session")
def raw():
    return load_raw()


@pytest.fixture(scope="session")
def expanded(raw):
    return expand(raw, ODD_USERS)


@pytest.fixture(scope="session")
def translated(expanded):
    return translate(expanded)
