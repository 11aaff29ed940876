"""IAM decisions of the rotation and fleet roles, evaluated offline by a maintained IAM policy
simulator (@cloud-copilot/iam-simulate, tools/iam-simulate; installed by
scripts/validate-template with `npm ci`): AWS's evaluation logic and all condition operators,
with its IAM data rejecting unknown actions, resources of the wrong type and condition keys an
action does not support. The roles' statements are taken from the translated template with
intrinsics filled in; each request names the context keys IAM would supply (the user's
keyrot:managed tag, the request's tag keys)."""

import json
import os
import re
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SIMULATOR = os.path.join(ROOT, "tools", "iam-simulate")
ACCOUNT = "123456789012"
REGION = "us-east-1"
ROTATION_FN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-rotation"
MANAGED = {"aws:ResourceTag/keyrot:managed": "keyrot/iam/"}
USER = f"arn:aws:iam::{ACCOUNT}:user/alice"
USER_WITH_PATH = f"arn:aws:iam::{ACCOUNT}:user/division/alice"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/iam/alice-AbCdEf"
OTHER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-AbCdEf"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"


def _resolve(node):
    """Intrinsics of the policies, with every condition true (the optional statements apply)."""
    if isinstance(node, list):
        return [_resolve(item) for item in node]
    if isinstance(node, dict):
        if "Fn::Sub" in node:
            text = node["Fn::Sub"]
            assert isinstance(text, str), node
            text = (text.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", ACCOUNT)
                    .replace("${AWS::Region}", REGION))
            assert "${" not in text, text
            return text
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"][0]
            return {
                "RotationFunction": ROTATION_FN,
                "FleetFunction": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-fleet",
                "RotationLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-rotation:*",
                "FleetLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-fleet:*",
                "ManagedSecretsKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            }[target]
        if "Fn::If" in node:
            return _resolve(node["Fn::If"][1])
        if set(node) == {"Ref"}:
            return {"SenderEmail": "keyrot@example.com", "AWS::AccountId": ACCOUNT}[node["Ref"]]
        return {k: _resolve(v) for k, v in node.items()}
    return node


def role_policies(translated, role):
    documents = []
    for policy in translated["Resources"][role]["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        documents.append(_resolve(policy["PolicyDocument"]))
    for resource in translated["Resources"].values():
        if resource["Type"] == "AWS::IAM::RolePolicy" and resource["Properties"]["RoleName"] == {"Ref": role}:
            documents.append(_resolve(resource["Properties"]["PolicyDocument"]))
    return documents


def simulate(requests):
    if not os.path.isdir(os.path.join(SIMULATOR, "node_modules", "@cloud-copilot", "iam-simulate")):
        pytest.fail("IAM simulator missing: run scripts/validate-template (npm ci --prefix tools/iam-simulate)")
    out = subprocess.run(["node", os.path.join(SIMULATOR, "simulate.mjs")], input=json.dumps(requests),
                         capture_output=True, text=True, check=True, cwd=SIMULATOR)
    results = json.loads(out.stdout)
    for request, result in zip(requests, results):
        assert "error" not in result, (request["action"], request["resource"], result)
        # A context key the action does not have would make a condition meaningless.
        assert not result["ignoredContextKeys"], (request["action"], result["ignoredContextKeys"])
    return [r["result"] for r in results]


def decide(translated, role, cases):
    """cases: (action, resource, context) -> expected "Allowed" or not; asserts each one."""
    policies = role_policies(translated, role)
    requests = [{"identityPolicies": policies, "principal": f"arn:aws:iam::{ACCOUNT}:role/{role}",
                 "action": action, "resource": resource, "accountId": ACCOUNT, "context": context}
                for (action, resource, context), _ in cases]
    decisions = simulate(requests)
    wrong = [(case, decision) for (case, allowed), decision in zip(cases, decisions)
             if (decision == "Allowed") != allowed]
    assert not wrong, wrong


KEY_ACTIONS = ["iam:GetUser", "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
               "iam:GetAccessKeyLastUsed", "iam:ListUserTags"]


def test_rotation_role_manages_keys_of_managed_users_only(translated):
    cases = []
    for action in KEY_ACTIONS:
        for user in (USER, USER_WITH_PATH):
            cases.append(((action, user, MANAGED), True))
            cases.append(((action, user, {}), False))  # not enrolled
            cases.append(((action, user, {"aws:ResourceTag/keyrot:managed": "other/"}), False))
    decide(translated, "RotationFunctionRole", cases)


def test_rotation_role_writes_only_key_marks_and_intents_and_cannot_enrol(translated):
    cases = []
    for action in ("iam:TagUser", "iam:UntagUser"):
        request = {"aws:TagKeys": [KEY_ID]}
        if action == "iam:TagUser":
            request["aws:RequestTag/" + KEY_ID] = "keyrot managed"
        cases += [
            ((action, USER, {**MANAGED, **request}), True),
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:creating:0b2c9a4e-1111"]}), True),
            ((action, USER, request), False),  # unmanaged user
            # keyrot:managed itself: rotation-fn can neither enrol a user nor release one.
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:managed"]}), False),
            ((action, USER, {"aws:TagKeys": ["keyrot:managed"]}), False),
            ((action, USER, {**MANAGED, "aws:TagKeys": [KEY_ID, "team"]}), False),
            ((action, USER, {**MANAGED, "aws:TagKeys": ["AKIAIOSFODNN7EXAMPLEX"]}), False),
            ((action, USER, {**MANAGED, "aws:TagKeys": ["ASIAIOSFODNN7EXAMPLE"]}), False),
        ]
    decide(translated, "RotationFunctionRole", cases)


def test_rotation_role_secrets_are_keyrots_only(translated):
    cases = []
    for action in ("secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue",
                   "secretsmanager:UpdateSecretVersionStage", "secretsmanager:DescribeSecret"):
        cases.append(((action, SECRET, {}), True))
        cases.append(((action, OTHER_SECRET, {}), False))
    cases.append((("secretsmanager:CreateSecret", SECRET, {}), False))
    cases.append((("secretsmanager:DeleteSecret", SECRET, {}), False))
    decide(translated, "RotationFunctionRole", cases)


def test_fleet_enrols_with_exactly_the_managed_tag(translated):
    enrol = {"aws:TagKeys": ["keyrot:managed"], "aws:RequestTag/keyrot:managed": "keyrot/iam/"}
    decide(translated, "FleetFunctionRole", [
        (("iam:GetUser", USER, {}), True),
        (("iam:TagUser", USER, enrol), True),
        (("iam:TagUser", USER_WITH_PATH, enrol), True),
        (("iam:TagUser", USER, {"aws:TagKeys": ["keyrot:managed"], "aws:RequestTag/keyrot:managed": "x"}), False),
        (("iam:TagUser", USER, {**enrol, "aws:TagKeys": ["keyrot:managed", "team"], "aws:RequestTag/team": "a"}), False),
        (("iam:TagUser", USER, {"aws:TagKeys": ["team"], "aws:RequestTag/team": "a"}), False),
        # Marks only on managed users.
        (("iam:TagUser", USER, {"aws:TagKeys": [KEY_ID], "aws:RequestTag/" + KEY_ID: "until="}), False),
        (("iam:CreateAccessKey", USER, MANAGED), False),
    ])


def test_fleet_releases_managed_users_only(translated):
    cases = []
    for action in ("iam:ListAccessKeys", "iam:DeleteAccessKey", "iam:ListUserTags"):
        cases.append(((action, USER, MANAGED), True))
        cases.append(((action, USER, {}), False))
    for keys in ([KEY_ID], ["keyrot:creating:t"], ["keyrot:managed"]):
        cases.append((("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": keys}), True))
        cases.append((("iam:UntagUser", USER, {"aws:TagKeys": keys}), False))
    cases.append((("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": ["team"]}), False))
    cases.append((("iam:TagUser", USER, {**MANAGED, "aws:TagKeys": [KEY_ID], "aws:RequestTag/" + KEY_ID: "until="}), True))
    decide(translated, "FleetFunctionRole", cases)


def test_fleet_secrets_lifecycle_without_reading_a_key(translated):
    fleet_tag = {"aws:TagKeys": ["keyrot:fleet"], "aws:RequestTag/keyrot:fleet": "keyrot/iam/"}
    decide(translated, "FleetFunctionRole", [
        (("secretsmanager:CreateSecret", SECRET, fleet_tag), True),
        (("secretsmanager:CreateSecret", SECRET, {}), False),
        (("secretsmanager:CreateSecret", OTHER_SECRET, fleet_tag), False),
        (("secretsmanager:TagResource", SECRET, fleet_tag), True),  # adoption
        (("secretsmanager:TagResource", SECRET, {"aws:TagKeys": ["team"], "aws:RequestTag/team": "x"}), False),
        (("secretsmanager:PutResourcePolicy", SECRET, {"secretsmanager:BlockPublicPolicy": "true"}), True),
        (("secretsmanager:PutResourcePolicy", SECRET, {"secretsmanager:BlockPublicPolicy": "false"}), False),
        (("secretsmanager:DescribeSecret", SECRET, {}), True),
        (("secretsmanager:RotateSecret", SECRET, {}), True),
        (("secretsmanager:RotateSecret", SECRET, {"secretsmanager:RotationLambdaARN": ROTATION_FN}), True),
        (("secretsmanager:RotateSecret", SECRET, {"secretsmanager:RotationLambdaARN": ROTATION_FN + "x"}), False),
        (("secretsmanager:RotateSecret", OTHER_SECRET, {}), False),
        (("lambda:InvokeFunction", ROTATION_FN, {}), True),
        (("secretsmanager:DeleteSecret", SECRET, {"aws:ResourceTag/keyrot:fleet": "keyrot/iam/"}), True),
        (("secretsmanager:DeleteSecret", SECRET, {}), False),  # never a secret it did not make or adopt
        (("secretsmanager:ListSecrets", "*", {}), True),
        (("secretsmanager:GetSecretValue", SECRET, {}), False),
        (("secretsmanager:PutSecretValue", SECRET, {}), False),
        (("ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/users", {}), True),
        (("ssm:DeleteParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/users/alice", {}), True),
        (("ssm:DeleteParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/clients/default", {}), False),
        (("ssm:PutParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/users/alice", {}), False),
    ])
