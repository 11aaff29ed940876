"""IAM decisions of the rotation and fleet roles, evaluated offline by a maintained IAM policy
simulator (@cloud-copilot/iam-simulate, tools/iam-simulate; installed by
scripts/validate-template with `npm ci`): AWS's evaluation logic and all condition operators,
with its IAM data rejecting unknown actions, resources of the wrong type and condition keys an
action does not support. The roles' statements are taken from the translated template with
intrinsics filled in; each request names the context keys IAM would supply (the user's
keyrot:managed tag, the request's tag keys). CALLS lists every AWS call the functions' code
makes, per role, and a scan of the Rust sources checks that no SDK call is missing from it."""

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
# EligibleUserPath as the simulations deploy it: keyrot may manage the users under this IAM
# path only. USER is directly under it, USER_WITH_PATH under a path nested in it.
ELIGIBLE_PATH = "/keyrot-managed/"
USER = f"arn:aws:iam::{ACCOUNT}:user/keyrot-managed/alice"
USER_WITH_PATH = f"arn:aws:iam::{ACCOUNT}:user/keyrot-managed/division/alice"
# Users outside it: at the root (an administrator, a break-glass user), under another path, under
# a path that only begins like it, and a user named like the path's segment.
OUTSIDE_USERS = [f"arn:aws:iam::{ACCOUNT}:user/admin", f"arn:aws:iam::{ACCOUNT}:user/alice",
                 f"arn:aws:iam::{ACCOUNT}:user/other/alice",
                 f"arn:aws:iam::{ACCOUNT}:user/keyrot-managed-not/alice",
                 f"arn:aws:iam::{ACCOUNT}:user/keyrot-managed"]
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/iam/alice-AbCdEf"
OTHER_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod/db-AbCdEf"
KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SESSION_DENY_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/keyrot/keyrot-ManagedUserSessionDenyPolicy-ABCDEFGHIJKL"
BREAK_GLASS_ARN = f"arn:aws:iam::{ACCOUNT}:role/ops/BreakGlass"
# The emergency revoke's request secret (RevokeRequestsSecret) and RevokePrincipalArns.
REVOKE_REQUESTS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/revoke-requests-AbCdEf"
REVOKE_PRINCIPALS = [f"arn:aws:iam::{ACCOUNT}:role/KeyrotOperator", f"arn:aws:iam::{ACCOUNT}:user/ops/oncall"]


def role_arn(role):
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/keyrot/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"

_NO_VALUE = object()  # AWS::NoValue: the list item or property disappears


def _ref_values(refs):
    """What Ref (and a ${Name} in Fn::Sub) gives in the simulations; refs adds or overrides."""
    return {"SenderEmail": "keyrot@example.com", "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
            "AWS::Region": REGION, "EligibleUserPath": ELIGIBLE_PATH,
            "ManagedUserSessionDenyPolicy": SESSION_DENY_POLICY,
            "BreakGlassPrincipalArn": BREAK_GLASS_ARN,
            "RevokeRequestsSecret": REVOKE_REQUESTS,
            "RevokePrincipalArns": ",".join(REVOKE_PRINCIPALS),
            "AWS::NoValue": _NO_VALUE,
            "AWS::StackId": STACK_ID, **(refs or {})}


def _resolve(node, refs=None, false_conditions=()):
    """Intrinsics of the policies, with every condition true (the optional statements apply)
    except false_conditions; refs adds or overrides Ref values (in Fn::Sub too)."""
    if refs is not None or false_conditions:
        def again(item):
            return _resolve(item, refs, false_conditions)
    else:
        again = _resolve
    if isinstance(node, list):
        return [item for item in map(again, node) if item is not _NO_VALUE]
    if isinstance(node, dict):
        if "Fn::Split" in node:
            delimiter, text = node["Fn::Split"]
            return again(text).split(delimiter)
        if "Fn::Join" in node:
            delimiter, items = node["Fn::Join"]
            return delimiter.join(again(items))
        if "Fn::Sub" in node:
            text = node["Fn::Sub"]
            assert isinstance(text, str), node
            values = _ref_values(refs)
            text = re.sub(r"\$\{([^!}][^}]*)\}",
                          lambda m: values[m.group(1)] if isinstance(values.get(m.group(1)), str) else m.group(0),
                          text)
            assert "${" not in text, text
            return text
        if "Fn::GetAtt" in node:
            target = node["Fn::GetAtt"][0]
            if target.endswith("Role"):
                return role_arn(target)  # the principal the simulations name for that role
            return {
                "RotationFunction": ROTATION_FN,
                "FleetFunction": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:keyrot-fleet",
                "RotationLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-rotation:*",
                "FleetLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-fleet:*",
                "AuthorizerLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-authorizer:*",
                "ApiLogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/keyrot-api:*",
                "ManagedSecretsKey": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            }[target]
        if "Fn::If" in node:
            condition, if_true, if_false = node["Fn::If"]
            return again(if_false if condition in false_conditions else if_true)
        if set(node) == {"Ref"}:
            return _ref_values(refs)[node["Ref"]]
        resolved = {k: again(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}
    return node


def role_policies(translated, role, refs=None):
    documents = []
    for policy in translated["Resources"][role]["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        documents.append(_resolve(policy["PolicyDocument"], refs))
    for resource in translated["Resources"].values():
        if resource["Type"] == "AWS::IAM::RolePolicy" and resource["Properties"]["RoleName"] == {"Ref": role}:
            documents.append(_resolve(resource["Properties"]["PolicyDocument"], refs))
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
    requests = [{"identityPolicies": policies, "principal": role_arn(role),
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
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:slot:a"]}), True),
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:slot:b"]}), True),
            ((action, USER, {"aws:TagKeys": ["keyrot:slot:a"]}), False),  # unmanaged user
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:slot:c"]}), False),
            ((action, USER, {**MANAGED, "aws:TagKeys": ["keyrot:slot:"]}), False),
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
    for keys in ([KEY_ID], ["keyrot:slot:a"], ["keyrot:slot:b"], ["keyrot:creating:t"],
                 ["keyrot:managed"]):
        cases.append((("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": keys}), True))
        cases.append((("iam:UntagUser", USER, {"aws:TagKeys": keys}), False))
    cases.append((("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": ["team"]}), False))
    cases.append((("iam:TagUser", USER, {**MANAGED, "aws:TagKeys": [KEY_ID], "aws:RequestTag/" + KEY_ID: "until="}), True))
    cases.append((("iam:TagUser", USER, {**MANAGED, **SLOT_MARK}), True))
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


# ------------------------------------------------------------------ issue 19

def test_fleet_attaches_and_detaches_the_session_deny_policy_only_on_managed_users(translated):
    # 19.4 (item 7): the fleet may put ManagedUserSessionDenyPolicy on a managed user and take it
    # off again, and no other policy (an AWS managed one, another customer policy, a lookalike
    # name) on any user, nor that one on a user keyrot does not manage.
    policy = {"iam:PolicyARN": SESSION_DENY_POLICY}
    others = ["arn:aws:iam::aws:policy/AdministratorAccess",
              f"arn:aws:iam::{ACCOUNT}:policy/keyrot/other",
              SESSION_DENY_POLICY + "X",
              SESSION_DENY_POLICY.replace(":policy/keyrot/", ":policy/")]
    cases = []
    for action in ("iam:AttachUserPolicy", "iam:DetachUserPolicy"):
        for user in (USER, USER_WITH_PATH):
            cases.append(((action, user, {**MANAGED, **policy}), True))
            cases.append(((action, user, policy), False))  # not managed
            cases.append(((action, user, {"aws:ResourceTag/keyrot:managed": "other/", **policy}), False))
        cases += [((action, USER, {**MANAGED, "iam:PolicyARN": other}), False) for other in others]
    cases += [(("iam:PutUserPolicy", USER, MANAGED), False), (("iam:AttachRolePolicy", role_arn("x"), policy), False)]
    decide(translated, "FleetFunctionRole", cases)


def session_deny_policy(translated):
    [document] = [_resolve(r["Properties"]["PolicyDocument"]) for logical_id, r in translated["Resources"].items()
                  if logical_id == "ManagedUserSessionDenyPolicy"]
    return document


def test_session_deny_policy_denies_temporary_credentials_and_nothing_else(translated):
    # 19.4: attached to a user who may do anything, the policy refuses every request signed with
    # temporary credentials (GetSessionToken, GetFederationToken: IAM puts aws:TokenIssueTime in
    # those requests only) and leaves requests signed with the user's access key alone.
    allow_all = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    deny = session_deny_policy(translated)
    calls = [("s3:ListAllMyBuckets", "*"), ("secretsmanager:GetSecretValue", SECRET),
             ("iam:CreateAccessKey", USER), ("sts:GetSessionToken", "*"),
             ("lambda:InvokeFunction", ROTATION_FN),
             # No policy can deny GetCallerIdentity (AWS, and the simulator): a session can still
             # ask who it is, nothing more.
             ("sts:GetCallerIdentity", "*")]
    requests = []
    for action, resource in calls:
        for context in ({"aws:TokenIssueTime": "2026-01-01T00:00:00Z"}, {}):
            requests.append({"identityPolicies": [allow_all, deny], "principal": USER, "action": action,
                             "resource": resource, "accountId": ACCOUNT, "context": context})
    assert simulate(requests) == ["ExplicitlyDenied", "Allowed"] * (len(calls) - 1) + ["Allowed", "Allowed"]


def client_secret_policy(translated):
    return _resolve(translated["Resources"]["DefaultClientSecretPolicy"]["Properties"]["ResourcePolicy"])


def test_client_secrets_are_readable_by_keyrots_api_roles_and_break_glass_only(translated):
    # 19.1 (item 3): the client secret's resource policy denies GetSecretValue to any principal
    # but the authorizer's and api-fn's roles and the break-glass principal, whatever its own
    # IAM policies allow (here: GetSecretValue on every secret).
    broad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
         "Resource": "*"}]}
    resource_policy = client_secret_policy(translated)
    readers = {role_arn("AuthorizerFunctionRole"): role_policies(translated, "AuthorizerFunctionRole"),
               role_arn("ApiFunctionRole"): role_policies(translated, "ApiFunctionRole"),
               BREAK_GLASS_ARN: [broad]}
    others = [role_arn("RotationFunctionRole"), role_arn("FleetFunctionRole"), role_arn("Admin"),
              f"arn:aws:iam::{ACCOUNT}:user/alice"]
    requests, expected = [], []
    for principal, policies in [*readers.items(), *((o, [broad]) for o in others)]:
        for action, allowed in (("secretsmanager:GetSecretValue", principal in readers),
                                ("secretsmanager:DescribeSecret", principal not in readers or principal == BREAK_GLASS_ARN)):
            requests.append({"identityPolicies": policies, "principal": principal, "action": action,
                             "resource": CLIENT_SECRET, "accountId": ACCOUNT,
                             "context": {"aws:PrincipalArn": principal}, "resourcePolicy": resource_policy})
            expected.append(allowed)
    decisions = simulate(requests)
    wrong = [(r["principal"], r["action"], d) for r, d, e in zip(requests, decisions, expected)
             if (d == "Allowed") != e]
    assert not wrong, wrong
    # Denied by the resource policy, not merely not granted.
    assert decisions[2 * len(readers)] == "ExplicitlyDenied"


# ------------------------------------------------------------------ the emergency revoke's gate
# Security issue, item 2: the rotation function revokes a key only on a fresh request in
# keyrot/revoke-requests that names the same secret and key, and only RevokePrincipalArns may
# write that secret. The resource policy decides it whatever the writer's own IAM policies
# allow: here everything Secrets Manager offers (a typical administrator or SecretsManagerReadWrite).

REQUEST_WRITES = ["secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret",
                  "secretsmanager:UpdateSecretVersionStage", "secretsmanager:RestoreSecret",
                  "secretsmanager:TagResource", "secretsmanager:UntagResource"]
SECRETS_ADMIN = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}]}
NOT_REVOKERS = [role_arn("Admin"), role_arn("RotationFunctionRole"), role_arn("FleetFunctionRole"),
                role_arn("ApiFunctionRole"), BREAK_GLASS_ARN, f"arn:aws:iam::{ACCOUNT}:user/alice",
                # A look-alike of a revoke principal (same name, another path or kind).
                f"arn:aws:iam::{ACCOUNT}:role/ops/KeyrotOperator", f"arn:aws:iam::{ACCOUNT}:user/oncall"]


def revoke_requests_policy(translated, principals):
    """RevokeRequestsSecretPolicy as deployed with RevokePrincipalArns = principals."""
    policy = translated["Resources"]["RevokeRequestsSecretPolicy"]["Properties"]
    assert policy["SecretId"] == {"Ref": "RevokeRequestsSecret"} and policy["BlockPublicPolicy"] is True
    return _resolve(policy["ResourcePolicy"], refs={"RevokePrincipalArns": ",".join(principals)},
                    false_conditions=() if principals else ("HasRevokePrincipals",))


def request_decisions(translated, principals, cases):
    """cases: (principal, action) -> decision on keyrot/revoke-requests, with SECRETS_ADMIN as
    the principal's own policy (the rotation role: its own policies)."""
    resource_policy = revoke_requests_policy(translated, principals)
    rotation_policies = role_policies(translated, "RotationFunctionRole")
    requests = [{"identityPolicies": rotation_policies if principal == role_arn("RotationFunctionRole")
                 else [SECRETS_ADMIN], "principal": principal, "action": action,
                 "resource": REVOKE_REQUESTS, "accountId": ACCOUNT,
                 "context": {"aws:PrincipalArn": principal}, "resourcePolicy": resource_policy}
                for principal, action in cases]
    return simulate(requests)


def test_revoke_requests_are_written_by_revoke_principals_only(translated):
    cases = [(principal, action) for principal in [*REVOKE_PRINCIPALS, *NOT_REVOKERS] for action in REQUEST_WRITES]
    decisions = request_decisions(translated, REVOKE_PRINCIPALS, cases)
    # The rotation role is refused by its own policies as well; the others by the resource policy.
    expected = ["Allowed" if principal in REVOKE_PRINCIPALS else "ExplicitlyDenied" for principal, _ in cases]
    wrong = [(case, decision) for case, decision, e in zip(cases, decisions, expected) if decision != e]
    assert not wrong, wrong


def test_revoke_requests_are_read_by_the_rotation_role_and_revoke_principals_only(translated):
    readers = [role_arn("RotationFunctionRole"), *REVOKE_PRINCIPALS]
    cases = [(principal, "secretsmanager:GetSecretValue")
             for principal in [*readers, *(p for p in NOT_REVOKERS if p not in readers)]]
    decisions = request_decisions(translated, REVOKE_PRINCIPALS, cases)
    expected = ["Allowed" if principal in readers else "ExplicitlyDenied" for principal, _ in cases]
    assert decisions == expected, list(zip(cases, decisions))


def test_without_revoke_principals_nobody_writes_a_revoke_request(translated):
    # RevokePrincipalArns empty (the default): the write statement applies to every principal,
    # the would-be operators too; the rotation role still reads (and finds no request).
    policy = revoke_requests_policy(translated, [])
    [write] = [s for s in policy["Statement"] if "secretsmanager:PutSecretValue" in s["Action"]]
    assert "Condition" not in write
    everyone = [*REVOKE_PRINCIPALS, *NOT_REVOKERS]
    cases = [(principal, action) for principal in everyone for action in REQUEST_WRITES]
    cases += [(principal, "secretsmanager:GetSecretValue") for principal in everyone]
    decisions = request_decisions(translated, [], cases)
    expected = ["Allowed" if (principal, action) == (role_arn("RotationFunctionRole"), "secretsmanager:GetSecretValue")
                else "ExplicitlyDenied" for principal, action in cases]
    wrong = [(case, decision) for case, decision, e in zip(cases, decisions, expected) if decision != e]
    assert not wrong, wrong


@pytest.mark.parametrize("principals", [REVOKE_PRINCIPALS, []], ids=["with-revokers", "without"])
def test_revoke_requests_policy_leaves_the_stack_its_own_operations(translated, principals):
    # CloudFormation (as the deployer, who need not be a revoke principal) deletes the secret
    # with the stack and rewrites this policy when RevokePrincipalArns changes; the metadata
    # stays readable (keyrot status, doctor).
    actions = ["secretsmanager:DeleteSecret", "secretsmanager:PutResourcePolicy",
               "secretsmanager:DeleteResourcePolicy", "secretsmanager:DescribeSecret",
               "secretsmanager:GetResourcePolicy"]
    decisions = request_decisions(translated, principals, [(role_arn("Admin"), action) for action in actions])
    assert decisions == ["Allowed"] * len(actions), list(zip(actions, decisions))


def test_rotation_role_reads_the_revoke_request_and_cannot_write_one(translated):
    # Read: this secret only, by its ARN: a secret deleted and re-created under the same name
    # (another suffix, no resource policy) is not read, so the revoke fails closed. No write:
    # the function cannot make up the request it checks.
    recreated = REVOKE_REQUESTS.replace("-AbCdEf", "-ZyXwVu")
    decide(translated, "RotationFunctionRole", [
        (("secretsmanager:GetSecretValue", REVOKE_REQUESTS, {}), True),
        (("secretsmanager:GetSecretValue", recreated, {}), False),
        *[((action, REVOKE_REQUESTS, {}), False) for action in REQUEST_WRITES],
        (("secretsmanager:CreateSecret", recreated, {}), False),
        (("secretsmanager:DeleteSecret", REVOKE_REQUESTS, {}), False),
    ])


# ------------------------------------------------------------------ every call of the code
# Every AWS API call the functions' code makes (keyrot/src, the function crates), with the role
# that makes it and the request IAM sees, simulated as Allowed. moto checks no IAM: a call the
# role does not allow passes every local test and fails only on AWS. When the code gets a new
# call, test_every_sdk_call_of_the_code_is_in_a_table fails until it is added here (and granted).

SLOT_B_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/iam/alice/b-AbCdEf"
MANAGED_SECRETS = (SECRET, SLOT_B_SECRET)  # a user's two key slots: keyrot/iam/<user>, .../b
SIGNING_KEY = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/signing-key-AbCdEf"
CLIENT_SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:keyrot/clients/default-AbCdEf"
PUBLIC_KEYS = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/signing-public-keys"
# GetParametersByPath authorizes on the path itself.
CLIENTS_PATH = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/clients"
USERS_PATH = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/keyrot/users"
SENDER_IDENTITY = f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/example.com"
INTENT = "keyrot:creating:0b2c9a4e-1111"
# The tags keyrot writes on a managed user (iam_key/ledger.rs): a key's mark and an intent.
MARK = {"aws:TagKeys": [KEY_ID],
        "aws:RequestTag/" + KEY_ID: "keyrot managed secret=keyrot/iam/alice/b version=t until=1"}
CREATING = {"aws:TagKeys": [INTENT], "aws:RequestTag/" + INTENT: "secret=keyrot/iam/alice"}
SLOT_MARK = {"aws:TagKeys": ["keyrot:slot:b"],
             "aws:RequestTag/keyrot:slot:b": "keyrot managed secret=keyrot/iam/alice/b version=t "
                                             "interval=600 key=" + KEY_ID}
FLEET_TAG = {"aws:TagKeys": ["keyrot:fleet"], "aws:RequestTag/keyrot:fleet": "keyrot/iam/"}
FLEET_OWNED = {"aws:ResourceTag/keyrot:fleet": "keyrot/iam/"}
ENROL = {"aws:TagKeys": ["keyrot:managed"], "aws:RequestTag/keyrot:managed": "keyrot/iam/"}

# role -> [(action, resource, context)]; comments name the code that makes the calls.
CALLS = {
    "RotationFunctionRole": [
        # rotation/secretsmanager.rs: the rotation protocol on either slot (and the sibling
        # slot's description and value), then the version count (SecretVersionCount).
        *[(action, secret, {}) for secret in MANAGED_SECRETS for action in (
            "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:ListSecretVersionIds")],
        # signing_key/: the same protocol on the signing key (its versions are not counted).
        *[(action, SIGNING_KEY, {}) for action in (
            "secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue",
            "secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage")],
        # signing_key/ports.rs: the public keys the authorizer checks tokens with.
        ("ssm:GetParameter", PUBLIC_KEYS, {}),
        ("ssm:PutParameter", PUBLIC_KEYS, {}),
        # iam_key/sdk.rs: keys and keyrot's tags of a managed user.
        ("iam:GetUser", USER, MANAGED),
        ("iam:ListAccessKeys", USER, MANAGED),
        ("iam:CreateAccessKey", USER, MANAGED),
        ("iam:DeleteAccessKey", USER, MANAGED),
        ("iam:GetAccessKeyLastUsed", USER, MANAGED),
        ("iam:ListUserTags", USER, MANAGED),
        ("iam:TagUser", USER, {**MANAGED, **MARK}),
        ("iam:TagUser", USER, {**MANAGED, **SLOT_MARK}),
        ("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": [INTENT]}),
        ("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": [KEY_ID, INTENT]}),
        # revoke/: RotateSecret of either slot (which needs InvokeFunction on the rotation
        # function) and the clients that may read the user.
        *[("secretsmanager:RotateSecret", secret, {}) for secret in MANAGED_SECRETS],
        ("lambda:InvokeFunction", ROTATION_FN, {}),
        ("ssm:GetParametersByPath", CLIENTS_PATH, {}),
        # revoke/: first the operator's request (KEYROT_REVOKE_REQUESTS_SECRET), which it must
        # name; RevokeRequestsSecretPolicy does not deny this role the read
        # (test_revoke_requests_are_written_by_revoke_principals_only).
        ("secretsmanager:GetSecretValue", REVOKE_REQUESTS, {}),
        # notify.rs: failure mail, as the configured sender only.
        ("ses:SendEmail", SENDER_IDENTITY, {"ses:FromAddress": "keyrot@example.com"}),
    ],
    "FleetFunctionRole": [
        # fleet/stack.rs: the teardown's check that the stack is being deleted.
        ("cloudformation:DescribeStacks", STACK_ID, {}),
        # fleet/sdk.rs: the registry.
        ("ssm:GetParametersByPath", USERS_PATH, {}),
        ("ssm:DeleteParameter", USERS_PATH + "/alice", {}),
        # fleet/sdk.rs: both slot secrets of a user; DescribeSecret confirms what ListSecrets
        # (up to five minutes behind) said.
        ("secretsmanager:ListSecrets", "*", {}),
        *[(action, secret, context) for secret in MANAGED_SECRETS for action, context in (
            ("secretsmanager:DescribeSecret", {}),
            ("secretsmanager:CreateSecret", FLEET_TAG),
            ("secretsmanager:TagResource", FLEET_TAG),
            ("secretsmanager:PutResourcePolicy", {"secretsmanager:BlockPublicPolicy": "true"}),
            ("secretsmanager:TagResource", {**FLEET_OWNED, "aws:TagKeys": ["keyrot:policy"]}),
            ("secretsmanager:RotateSecret", {"secretsmanager:RotationLambdaARN": ROTATION_FN}),
            ("secretsmanager:RotateSecret", {}),
            ("secretsmanager:DeleteSecret", FLEET_OWNED),
            ("secretsmanager:RestoreSecret", FLEET_OWNED))],
        ("lambda:InvokeFunction", ROTATION_FN, {}),  # RotateSecret's check on its caller
        # fleet/onboard.rs, offboard.rs, user_keys.rs (through iam_key/sdk.rs).
        ("iam:GetUser", USER, {}),
        ("iam:TagUser", USER, ENROL),
        ("iam:ListAccessKeys", USER, MANAGED),
        ("iam:DeleteAccessKey", USER, MANAGED),
        ("iam:ListUserTags", USER, MANAGED),
        ("iam:TagUser", USER, {**MANAGED, **MARK}),
        ("iam:TagUser", USER, {**MANAGED, **SLOT_MARK}),
        ("iam:UntagUser", USER, {**MANAGED, "aws:TagKeys": [KEY_ID, "keyrot:slot:a", "keyrot:slot:b", INTENT, "keyrot:managed"]}),
        # Ending a managed user's sessions (KEYROT_SESSION_DENY_POLICY_ARN), and undoing it.
        ("iam:AttachUserPolicy", USER, {**MANAGED, "iam:PolicyARN": SESSION_DENY_POLICY}),
        ("iam:DetachUserPolicy", USER, {**MANAGED, "iam:PolicyARN": SESSION_DENY_POLICY}),
    ],
    "AuthorizerFunctionRole": [
        # api/parameters.rs, api/secret_batch.rs: the client registry and the clients' keys
        # (BatchGetSecretValue authorizes each secret it returns as GetSecretValue).
        ("ssm:GetParametersByPath", CLIENTS_PATH, {}),
        ("secretsmanager:BatchGetSecretValue", "*", {}),
        ("secretsmanager:GetSecretValue", CLIENT_SECRET, {}),
        # signing_key/ports.rs: the public keys.
        ("ssm:GetParameter", PUBLIC_KEYS, {}),
    ],
    "ApiFunctionRole": [
        # api/secret_reader.rs: a user's key from either slot, and the signing key.
        *[("secretsmanager:GetSecretValue", secret, {}) for secret in (*MANAGED_SECRETS, SIGNING_KEY)],
        # api-fn re-checks the caller's API key and token as the authorizer does (issue 19,
        # item 3): the client registry, the clients' keys and the public signing keys.
        ("ssm:GetParametersByPath", CLIENTS_PATH, {}),
        ("secretsmanager:BatchGetSecretValue", "*", {}),
        ("secretsmanager:GetSecretValue", CLIENT_SECRET, {}),
        ("ssm:GetParameter", PUBLIC_KEYS, {}),
    ],
}

# Calls no role of the stack makes, with the function that makes them and why.
CALLS_WITHOUT_A_ROLE = {
    "GetCallerIdentity": "rotation-fn, testSecret (iam_key/sdk.rs StsKeyVerifier): signed with "
                         "the new access key itself, to see that IAM accepts it",
}


def role_decisions(translated, role, calls, refs=None):
    policies = role_policies(translated, role, refs)
    return simulate([{"identityPolicies": policies, "principal": role_arn(role),
                      "action": action, "resource": resource, "accountId": ACCOUNT, "context": context}
                     for action, resource, context in calls])


@pytest.mark.parametrize("role", sorted(CALLS))
def test_each_role_allows_every_call_its_code_makes(translated, role):
    calls = CALLS[role]
    refused = [(call, decision) for call, decision in zip(calls, role_decisions(translated, role, calls))
               if decision != "Allowed"]
    assert not refused, refused


def test_rotation_role_counts_versions_of_managed_secrets_only(translated):
    # The version count is for managed secrets (both slots, above), not the signing key nor any
    # other secret of the account: those are denied for want of a grant.
    calls = [("secretsmanager:ListSecretVersionIds", SIGNING_KEY, {}),
             ("secretsmanager:ListSecretVersionIds", OTHER_SECRET, {})]
    assert role_decisions(translated, "RotationFunctionRole", calls) == ["ImplicitlyDenied"] * 2


# ------------------------------------------------------------------ which users keyrot may manage
# Security issue, item 5: whoever writes the user registry (/keyrot/users/*) chooses which users
# keyrot mints keys for, but only among the users under EligibleUserPath, which the deployment
# sets and keyrot's roles cannot widen. Every user call of CALLS is simulated on users inside and
# outside that path, for several values of it.

# Calls on users that may name any user: the fleet's GetUser (CheckUsers), which only reads
# (onboarding logs a clear refusal of a user outside the path; offboarding and the teardown read
# the keyrot:managed tag). The template says why next to the statement.
ANY_USER_CALLS = {("FleetFunctionRole", "iam:GetUser")}


def user_calls(role):
    return [(action, resource, context) for action, resource, context in CALLS[role]
            if resource.startswith(f"arn:aws:iam::{ACCOUNT}:user/")]


def test_keyrot_acts_only_on_users_under_the_eligible_path(translated):
    iam_user = f"arn:aws:iam::{ACCOUNT}:user"
    cases = [
        # EligibleUserPath, users under it (nested paths too), users outside it.
        (ELIGIBLE_PATH, [USER, USER_WITH_PATH], OUTSIDE_USERS),
        ("/team/ci/", [f"{iam_user}/team/ci/alice", f"{iam_user}/team/ci/nightly/alice"],
         [f"{iam_user}/team/alice", f"{iam_user}/team/ci-old/alice", f"{iam_user}/admin", USER]),
        # "/": every user of the account, an explicit choice.
        ("/", [USER, *OUTSIDE_USERS], []),
    ]
    for role in ("RotationFunctionRole", "FleetFunctionRole"):
        calls = user_calls(role)
        # The table's users are under the path the other simulations deploy with.
        assert calls and all(resource in (USER, USER_WITH_PATH) for _, resource, _ in calls), calls
        for path, inside, outside in cases:
            expected = []
            for action, _, context in calls:
                expected += [((action, user, context), "Allowed") for user in inside]
                expected += [((action, user, context),
                              "Allowed" if (role, action) in ANY_USER_CALLS else "ImplicitlyDenied")
                             for user in outside]
            decisions = role_decisions(translated, role, [call for call, _ in expected],
                                       refs={"EligibleUserPath": path})
            wrong = [(path, call, decision) for (call, want), decision in zip(expected, decisions)
                     if decision != want]
            assert not wrong, (role, wrong)


# Actions that would create a user, move one (UpdateUser changes its path or name), or change
# what a user may do: none of keyrot's roles may make them, on any user, inside the path or out.
USER_ADMIN_ACTIONS = ["iam:UpdateUser", "iam:CreateUser", "iam:DeleteUser",
                      "iam:PutUserPermissionsBoundary", "iam:DeleteUserPermissionsBoundary",
                      "iam:PutUserPolicy", "iam:DeleteUserPolicy",
                      "iam:CreateLoginProfile", "iam:UpdateLoginProfile"]


def test_no_keyrot_role_can_create_or_move_users_into_the_eligible_path(translated):
    # The parameter promises it (the administrator's boundary holds only if keyrot cannot widen it).
    assert "EligibleUserPath" in translated["Parameters"], "no EligibleUserPath parameter"
    parameter = translated["Parameters"]["EligibleUserPath"]
    assert "Default" not in parameter
    assert "cannot change a user's path" in parameter["Description"]
    roles = sorted(logical_id for logical_id, resource in translated["Resources"].items()
                   if resource["Type"] == "AWS::IAM::Role" and resource["Properties"].get("Policies"))
    assert {"RotationFunctionRole", "FleetFunctionRole", "ApiFunctionRole", "AuthorizerFunctionRole",
            "FleetScheduleRole"} <= set(roles), roles
    users = [USER, USER_WITH_PATH, *OUTSIDE_USERS]
    group = f"arn:aws:iam::{ACCOUNT}:group/admins"
    for role in roles:
        calls = [(action, user, context) for action in USER_ADMIN_ACTIONS for user in users
                 for context in ({}, MANAGED)]
        calls += [(action, group, {}) for action in ("iam:AddUserToGroup", "iam:RemoveUserFromGroup")]
        allowed = [call for call, decision in zip(calls, role_decisions(translated, role, calls))
                   if decision == "Allowed"]
        assert not allowed, (role, allowed)


# The code's SDK calls: every `.send()` of a fluent builder, `client.operation().setter(x)…`.
# The operation is the last argument-less call before the first one with arguments (or before
# `.send()`), skipping the builder's own methods: `self.client().rotate_secret().secret_id(id)`
# is rotate_secret. Comments and string literals are blanked first; tests are left out.
SOURCE_DIRS = ["keyrot/src", "rotation-fn/src", "api-fn/src", "authorizer-fn/src"]
BUILDER_METHODS = {"customize", "into_paginator", "items", "clone"}
_COMMENTS_AND_STRINGS = re.compile(
    r'//[^\n]*|/\*.*?\*/|b?r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\\n])\'', re.S)
_TEST_MODULE = re.compile(r"#\[cfg\(test\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")


def _code_only(text):
    code = _COMMENTS_AND_STRINGS.sub(lambda m: "" if m.group(0).startswith("/") else '""', text)
    while (module := _TEST_MODULE.search(code)):
        depth, end = 1, module.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(code[end], 0)
            end += 1
        code = code[:module.start()] + code[end:]
    return code


def _chain_before(code, end):
    """The method chain ending at code[end] ('.send()'): [(name, arguments or None)], outermost
    receiver first; None marks a field (`self.client`)."""
    chain = []
    while True:
        end = len(code[:end].rstrip())
        arguments = None
        if code[end - 1] == ")":
            depth, start = 0, end
            while True:
                start -= 1
                depth += {")": 1, "(": -1}.get(code[start], 0)
                if depth == 0:
                    break
            arguments = code[start + 1:end - 1].strip()
            end = len(code[:start].rstrip())
        name = re.search(r"[A-Za-z_][A-Za-z0-9_#]*$", code[:end])
        if not name:
            break
        before = code[:name.start()].rstrip()
        if not before.endswith("."):
            break  # the receiver itself (self, a variable, a path like Client::new)
        chain.append((name.group(0), arguments))
        end = len(before) - 1
    return chain[::-1]


def sdk_operations():
    """{PascalCase operation or None (not recognised): {files}} of the code's SDK calls."""
    operations = {}
    for directory in SOURCE_DIRS:
        for folder, _, files in os.walk(os.path.join(ROOT, directory)):
            for file in files:
                if not file.endswith(".rs") or file == "tests.rs" or file.endswith("_tests.rs"):
                    continue
                path = os.path.join(folder, file)
                with open(path, encoding="utf-8") as source:
                    code = _code_only(source.read())
                for send in re.finditer(r"\.\s*send\s*\(\s*\)", code):
                    leading = []
                    for name, arguments in _chain_before(code, send.start()):
                        if arguments:
                            break
                        if arguments is not None and name not in BUILDER_METHODS:
                            leading.append(name)
                    operation = "".join(w.capitalize() for w in leading[-1].split("_")) if leading else None
                    operations.setdefault(operation, set()).add(os.path.relpath(path, ROOT))
    return operations


def test_every_sdk_call_of_the_code_is_in_a_table():
    found = sdk_operations()
    # The scan sees the calls it must (a scan that finds nothing would pass anything).
    assert {"ListSecretVersionIds", "RotateSecret", "CreateAccessKey", "SendEmail", "GetCallerIdentity",
            "BatchGetSecretValue", "GetParametersByPath"} <= set(found), sorted(found, key=str)
    assert None not in found, f"a .send() whose operation the scan cannot tell, in {found.get(None)}"
    tabled = {action.split(":")[1] for calls in CALLS.values() for action, _, _ in calls}
    missing = {operation: sorted(files) for operation, files in found.items()
               if operation not in tabled and operation not in CALLS_WITHOUT_A_ROLE}
    assert not missing, f"SDK calls in no table of test_policy_simulation.py (grant them, then add them): {missing}"
