"""Policy snippets that docs/deploy.md hands to operators, read from between their markers
(<!-- keyrot-snippet: NAME --> ... <!-- /keyrot-snippet -->): each must be valid JSON and do
what the text says, simulated with the same IAM policy simulator as the roles
(test_policy_simulation.py). Issue 19, item 1 (docs/security.md, 19.5)."""

import json
import os
import re

import pytest

from test_policy_simulation import ACCOUNT, REGION, role_policies, simulate

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY_MD = os.path.join(ROOT, "docs", "deploy.md")
OPERATOR = f"arn:aws:iam::{ACCOUNT}:role/KeyrotOperator"
OTHER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/Developer"
FULL_ACCESS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
# The stack's functions as CloudFormation names them (<stack>-<LogicalId>-<suffix>), a version
# and an alias, and someone else's function.
KEYROT_FUNCTIONS = [f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-{name}-AbCdEf123456{qualifier}"
                    for name, qualifier in [("RotationFunction", ""), ("FleetFunction", ""),
                                            ("AuthorizerFunction", ":7"), ("ApiFunction", ":live")]]
OTHER_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:billing-report"
INVOKE_ACTIONS = ["lambda:InvokeFunction", "lambda:InvokeAsync"]


def snippet(name):
    with open(DEPLOY_MD, encoding="utf-8") as text:
        doc = text.read()
    found = re.search(rf"<!-- keyrot-snippet: {re.escape(name)} -->\s*```json\n(.*?)```\s*<!-- /keyrot-snippet -->",
                      doc, re.S)
    assert found, f"docs/deploy.md has no {name} snippet between markers"
    return json.loads(found.group(1))


def exempt_principals(policy):
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    return deny["Condition"]["ArnNotLike"]["aws:PrincipalArn"]


def keyrot_role_arn(policy, role):
    """The snippet's example ARN of one of the stack's roles (role/<stack>-<LogicalId>-<suffix>)."""
    [arn] = [a for a in exempt_principals(policy) if re.search(rf":role/keyrot-{role}-\w+$", a)]
    return arn


def request(principal, action, resource, identity, **policies):
    return {"identityPolicies": identity, "principal": principal, "action": action, "resource": resource,
            "accountId": ACCOUNT, "context": {"aws:PrincipalArn": principal}, **policies}


@pytest.mark.parametrize("name", ["invoke-scp", "invoke-boundary"])
def test_invoke_guardrail_denies_keyrots_functions_to_all_but_keyrot_and_the_operator(translated, name):
    policy = snippet(name)
    [deny] = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert {"lambda:InvokeFunction", "lambda:InvokeFunctionUrl"} <= set(deny["Action"])
    assert "Principal" not in deny and "NotPrincipal" not in deny  # SCPs have neither
    # Exactly the stack's roles that invoke a keyrot function (their policies allow it) and
    # the operator: the test_template invokers, by the names CloudFormation gives them.
    invokers = {"FleetFunctionRole": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-rotation",
                "RotationFunctionRole": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-rotation",
                "FleetScheduleRole": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-fleet"}
    assert sorted(exempt_principals(policy)) == sorted([OPERATOR, *(keyrot_role_arn(policy, r) for r in invokers)])

    place = ({"serviceControlPolicies": [FULL_ACCESS, policy]} if name == "invoke-scp"
             else {"permissionBoundaryPolicies": [policy]})
    cases = []
    # keyrot's roles still invoke what they must, with their own (template) policies.
    for role, function in invokers.items():
        cases.append((request(keyrot_role_arn(policy, role), "lambda:InvokeFunction", function,
                              role_policies(translated, role), **place), "Allowed"))
    for function in KEYROT_FUNCTIONS:
        for action in INVOKE_ACTIONS:
            cases.append((request(OPERATOR, action, function, [FULL_ACCESS], **place), "Allowed"))
            cases.append((request(OTHER_ROLE, action, function, [FULL_ACCESS], **place), "ExplicitlyDenied"))
            # A role named like keyrot's but not the stack's own is no exception.
            impostor = f"arn:aws:iam::{ACCOUNT}:role/keyrot-FleetFunctionRole-Impostor"
            cases.append((request(impostor, action, function, [FULL_ACCESS], **place), "ExplicitlyDenied"))
    # Everything else stays as the principal's own policies say.
    cases.append((request(OTHER_ROLE, "lambda:InvokeFunction", OTHER_FUNCTION, [FULL_ACCESS], **place), "Allowed"))
    cases.append((request(OTHER_ROLE, "s3:ListAllMyBuckets", "*", [FULL_ACCESS], **place), "Allowed"))
    cases.append((request(OTHER_ROLE, "lambda:GetFunction", KEYROT_FUNCTIONS[0], [FULL_ACCESS], **place), "Allowed"))
    decisions = simulate([r for r, _ in cases])
    wrong = [(r["principal"], r["action"], r["resource"], d) for (r, expected), d in zip(cases, decisions)
             if d != expected]
    assert not wrong, wrong


def test_boundary_and_scp_deny_the_same_thing():
    scp, boundary = snippet("invoke-scp"), snippet("invoke-boundary")
    [scp_deny] = scp["Statement"]
    [boundary_deny] = [s for s in boundary["Statement"] if s["Effect"] == "Deny"]
    assert scp_deny == boundary_deny
    # A boundary caps the principal's policies: without the Allow it would allow nothing.
    assert {"Effect": "Allow", "Action": "*", "Resource": "*"}.items() <= next(
        s for s in boundary["Statement"] if s["Effect"] == "Allow").items()
