"""Properties of template.yaml that no validator checks but keyrot depends on: the fleet's
wiring and fixed size, rotation wiring, least privilege, the API's authorizer and key source,
the functions' environment contract, alarms and logs. Each test reads the template as written
(raw), with a user list substituted (rendered) or after the SAM transform (translated); see
conftest.py. IAM decisions are simulated in test_policy_simulation.py."""

import json
import re

READ_PREFIXES = ("Get", "BatchGet", "List", "Describe")
ISSUER = {"Fn::Sub": "urn:keyrot:${AWS::AccountId}:${AWS::Region}:${AWS::StackName}"}
AUDIENCE = {"Fn::Sub": "urn:keyrot:${AWS::StackName}:api"}

# The environment the Rust functions read (exact values where the template fixes them).
ENV_CONTRACT = {
    "RotationFunction": {
        "RUST_LOG": "info",
        "KEYROT_VERIFY_MAX_WAIT_MS": "60000",
        "KEYROT_VERIFY_INITIAL_DELAY_MS": "1000",
        "KEYROT_VERIFY_MAX_DELAY_MS": "8000",
        "KEYROT_SIGNING_KEY_SECRET_NAME": "keyrot/signing-key",
        "KEYROT_PUBLIC_KEYS_PARAMETER": "/keyrot/signing-public-keys",
        "KEYROT_SENDER_EMAIL": {"Ref": "SenderEmail"},
        "KEYROT_ADMIN_EMAIL": {"Ref": "AdminEmail"},
        # The emergency revoke's gate (RevokeRequestsSecret).
        "KEYROT_REVOKE_REQUESTS_SECRET": "keyrot/revoke-requests",
    },
    "FleetFunction": {
        "RUST_LOG": "info",
        "KEYROT_USERS_PARAMETER_PATH": "/keyrot/users/",
        "KEYROT_SEED_USERS": {"Ref": "ManagedUsers"},
        # Security issue, item 5: the fleet refuses users outside this IAM path.
        "KEYROT_ELIGIBLE_USER_PATH": {"Ref": "EligibleUserPath"},
        "KEYROT_MANAGED_SECRET_PREFIX": "keyrot/iam/",
        "KEYROT_ROTATION_FUNCTION_ARN": {"Fn::GetAtt": ["RotationFunction", "Arn"]},
        "KEYROT_SECRETS_KMS_KEY_ID": {"Fn::If": ["UsesSecretsKey", {"Ref": "ManagedSecretsKey"}, ""]},
        "KEYROT_ROTATION_INTERVAL_MINUTES": {"Ref": "RotationIntervalMinutes"},
        "KEYROT_IAM_WRITES_PER_SECOND": {"Ref": "IamWritesPerSecond"},
        "KEYROT_SECRETS_WRITES_PER_SECOND": {"Ref": "SecretsWritesPerSecond"},
        "KEYROT_ROTATE_SECRET_PER_SECOND": {"Ref": "RotateSecretPerSecond"},
        "KEYROT_SESSION_DENY_POLICY_ARN": {"Ref": "ManagedUserSessionDenyPolicy"},
    },
    "AuthorizerFunction": {
        "RUST_LOG": "info",
        "KEYROT_ALLOWED_CIDRS": {"Ref": "AllowedCidrs"},
        "KEYROT_CLIENTS_PARAMETER_PATH": "/keyrot/clients/",
        "KEYROT_CLIENT_SECRET_PREFIX": "keyrot/clients/",
        "KEYROT_PUBLIC_KEYS_PARAMETER": "/keyrot/signing-public-keys",
        "KEYROT_TOKEN_ISSUER": ISSUER,
        "KEYROT_TOKEN_AUDIENCE": AUDIENCE,
        "KEYROT_REGISTRY_TTL_SECONDS": "30",
    },
    "ApiFunction": {
        "RUST_LOG": "info",
        "KEYROT_SIGNING_KEY_SECRET_NAME": "keyrot/signing-key",
        "KEYROT_MANAGED_SECRET_PREFIX": "keyrot/iam/",
        "KEYROT_TOKEN_ISSUER": ISSUER,
        "KEYROT_TOKEN_AUDIENCE": AUDIENCE,
        "KEYROT_TOKEN_TTL_SECONDS": {"Ref": "TokenTtlSeconds"},
        "KEYROT_ROTATION_INTERVAL_MINUTES": {"Ref": "RotationIntervalMinutes"},
        # api-fn re-checks the caller as the authorizer does (issue 19, item 3).
        "KEYROT_ALLOWED_CIDRS": {"Ref": "AllowedCidrs"},
        "KEYROT_CLIENTS_PARAMETER_PATH": "/keyrot/clients/",
        "KEYROT_CLIENT_SECRET_PREFIX": "keyrot/clients/",
        "KEYROT_PUBLIC_KEYS_PARAMETER": "/keyrot/signing-public-keys",
        "KEYROT_REGISTRY_TTL_SECONDS": "30",
    },
}


def of_type(template, resource_type):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def props(resource):
    return resource.get("Properties", {})


def as_list(value):
    return value if isinstance(value, list) else [value]


def plain(value):
    """A constant string, also when written as a Fn::Sub without variables (loop bodies)."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        assert "${" not in value["Fn::Sub"], value
        return value["Fn::Sub"]
    return value


def depends_on(resource):
    return as_list(resource.get("DependsOn", []))


def getatt_target(value):
    assert isinstance(value, dict) and "Fn::GetAtt" in value, value
    getatt = value["Fn::GetAtt"]
    return getatt.split(".")[0] if isinstance(getatt, str) else getatt[0]


# ------------------------------------------------------------------ rotation cadence


def test_rotation_function_knows_the_interval_it_keeps_promises_for(rendered):
    function = rendered["Resources"]["RotationFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    api = rendered["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["KEYROT_ROTATION_INTERVAL_MINUTES"] == {"Ref": "RotationIntervalMinutes"}
    assert api["KEYROT_ROTATION_INTERVAL_MINUTES"] == {"Ref": "RotationIntervalMinutes"}
    wait_s = int(variables["KEYROT_PROMISE_WAIT_MAX_MS"]) // 1000
    verify_s = int(variables["KEYROT_VERIFY_MAX_WAIT_MS"]) // 1000
    # One invocation runs one step: the longer of the two waits plus the calls' retries.
    assert function["Timeout"] >= max(wait_s, verify_s) + 60


def test_version_budget_alarm_watches_the_highest_version_count(rendered):
    alarm = rendered["Resources"]["SecretVersionBudgetAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("keyrot", "SecretVersionCount")
    assert alarm["Statistic"] == "Maximum" and "Dimensions" not in alarm
    assert alarm["Threshold"] < 100


def test_every_allowed_interval_keeps_each_slot_secret_under_the_version_budget(raw):
    # Each user has two key slot secrets (keyrot/iam/<user> and keyrot/iam/<user>/b) that take
    # turns: each rotates every two intervals, 1440 / (2 x minutes) versions per secret in the
    # 24 hours Secrets Manager keeps every version. No allowed interval may reach the alarm.
    threshold = raw["Resources"]["SecretVersionBudgetAlarm"]["Properties"]["Threshold"]
    assert threshold <= 80
    parameter = raw["Parameters"]["RotationIntervalMinutes"]
    for minutes in parameter["AllowedValues"]:
        assert 1440 / (2 * int(minutes)) < threshold, minutes
    assert "keyrot/iam/<user>/b" in parameter["Description"]


def iam_arn_matches(pattern, arn):
    """IAM's resource matching: * spans any characters (slashes too), ? exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_rotation_timeout_covers_the_sts_wait(raw):
    function = props(raw["Resources"]["RotationFunction"])
    max_wait_s = int(function["Environment"]["Variables"]["KEYROT_VERIFY_MAX_WAIT_MS"]) / 1000
    assert function["Timeout"] >= max(90, max_wait_s + 30)
    assert "ReservedConcurrentExecutions" in function


# ------------------------------------------------------------------ least privilege


def iam_policy_documents(template):
    for logical_id, resource in template["Resources"].items():
        p = props(resource)
        if resource["Type"] == "AWS::IAM::Role":
            for policy in p.get("Policies", []):
                if isinstance(policy, dict) and "Fn::If" in policy:
                    policy = policy["Fn::If"][1]
                yield logical_id, policy["PolicyDocument"]
        elif resource["Type"] in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            yield logical_id, p["PolicyDocument"]
        elif resource["Type"] == "AWS::Serverless::Function":
            for policy in as_list(p.get("Policies", [])):
                if isinstance(policy, dict) and "Statement" in policy:
                    yield logical_id, policy


def test_no_write_action_on_every_resource(translated):
    documents = list(iam_policy_documents(translated))
    assert len(documents) >= 10
    for logical_id, document in documents:
        for statement in as_list(document["Statement"]):
            assert "NotResource" not in statement and "NotAction" not in statement, logical_id
            if statement["Effect"] != "Allow":
                continue
            actions = as_list(statement["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (logical_id, actions)
            if "*" in as_list(statement["Resource"]):
                writes = [a for a in actions if not a.split(":")[1].startswith(READ_PREFIXES)]
                assert not writes, (logical_id, writes)


def test_api_function_reads_only_managed_keys_signing_key_and_client_keys(raw):
    role = props(raw["Resources"]["ApiFunctionRole"])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    secret_reads = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    for statement in secret_reads:
        assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
    arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    assert [r for s in secret_reads for r in as_list(s["Resource"])] == [
        {"Fn::Sub": arn + "keyrot/iam/*"},
        {"Fn::Sub": arn + "keyrot/signing-key-??????"},
        # Issue 19, item 3: the clients' API keys, to re-check the caller.
        {"Fn::Sub": arn + "keyrot/clients/*"},
    ]


# ------------------------------------------------------------------ API


def test_authorizer_checks_every_request_by_source_ip(raw, translated):
    api = props(raw["Resources"]["KeyrotApi"])
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    assert api["Auth"]["ApiKeyRequired"] is True
    authorizer = api["Auth"]["Authorizers"][api["Auth"]["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert getatt_target(authorizer["FunctionArn"]) == "AuthorizerFunction"

    # What API Gateway gets: identity sources and no result cache.
    body = props(translated["Resources"]["KeyrotApi"])["Body"]
    assert props(translated["Resources"]["KeyrotApi"])["ApiKeySourceType"] == "AUTHORIZER"
    scheme = body["components"]["securitySchemes"][api["Auth"]["DefaultAuthorizer"]]
    settings = scheme["x-amazon-apigateway-authorizer"]
    sources = [s.strip() for s in settings["identitySource"].split(",")]
    assert "context.identity.sourceIp" in sources
    assert "method.request.header.x-api-key" in sources
    assert settings["authorizerResultTtlInSeconds"] == 0
    assert settings["type"] == "request"


def test_routes_go_to_the_api_function_behind_authorizer_and_usage_plan(translated):
    body = props(translated["Resources"]["KeyrotApi"])["Body"]
    routes = {(path, method) for path, methods in body["paths"].items() for method in methods}
    assert routes == {("/generate-token", "post"), ("/active-key", "get")}
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            assert "${ApiFunction.Arn}" in operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
            assert operation["x-amazon-apigateway-integration"]["type"] == "aws_proxy"
            security = {name for requirement in operation["security"] for name in requirement}
            assert security == {"KeyrotAuthorizer", "api_key"}, (path, method)


def test_resource_policy_denies_outside_allowed_cidrs(translated):
    policy = props(translated["Resources"]["KeyrotApi"])["Body"]["x-amazon-apigateway-policy"]
    denies = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert len(denies) == 1
    # A list of CIDRs once deployed: split from the parameter's text, which is what SAM
    # substitutes for the Ref here (the deployment's value: the parameter has no default).
    from conftest import DEPLOY_PARAMETERS

    cidrs = {"Fn::Split": [",", DEPLOY_PARAMETERS["AllowedCidrs"]]}
    assert denies[0]["Condition"] == {"NotIpAddress": {"aws:SourceIp": cidrs}}
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert [s["Condition"] for s in allows] == [{"IpAddress": {"aws:SourceIp": cidrs}}]
    assert denies[0]["Action"] == "execute-api:Invoke"


def test_gateway_errors_are_json_with_error_and_message(translated):
    body = props(translated["Resources"]["KeyrotApi"])["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    for kind in ["UNAUTHORIZED", "ACCESS_DENIED", "INVALID_API_KEY", "THROTTLED", "QUOTA_EXCEEDED",
                 "DEFAULT_4XX", "DEFAULT_5XX"]:
        rendered = responses[kind]["responseTemplates"]["application/json"].replace(
            "$context.error.messageString", '"an error"'
        )
        assert set(json.loads(rendered)) == {"error", "message"}, kind
    assert responses["UNAUTHORIZED"]["statusCode"] == "401"
    assert responses["ACCESS_DENIED"]["statusCode"] == "403"
    # A usage key outside the plan: what the local gateway answers too (usage_plans.rs).
    assert responses["INVALID_API_KEY"]["statusCode"] == "403"
    assert responses["THROTTLED"]["statusCode"] == "429"


def test_stage_throttles_and_logs_access(translated):
    stage = props(translated["Resources"]["KeyrotApiv1Stage"])
    assert getatt_target(stage["AccessLogSetting"]["DestinationArn"]) == "ApiAccessLogGroup"
    assert "$context.requestId" in stage["AccessLogSetting"]["Format"]
    [settings] = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "StageRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "StageBurstLimit"}
    # The API exists only after the account's log role when the stack sets it.
    assert "ApiGatewayAccountReady" in depends_on(translated["Resources"]["KeyrotApi"])


def test_default_client_usage_key_matches_registry_and_plan(raw):
    resources = raw["Resources"]
    key_value = props(resources["DefaultClientUsageKey"])["Value"]["Fn::Sub"]
    registry = props(resources["DefaultClientRegistryEntry"])
    assert registry["Name"] == "/keyrot/clients/default"
    template, variables = registry["Value"]["Fn::Sub"]
    entry = json.loads(template.replace("${Users}", "alice").replace("${Cidrs}", "203.0.113.0/24"))
    assert set(entry) == {"users", "cidrs", "usage_key"}
    assert entry["usage_key"] == key_value
    assert len(key_value.replace("${AWS::StackName}", "s")) >= 20
    assert variables["Users"] == {"Fn::Join": ['","', {"Ref": "DefaultClientUsers"}]}
    assert variables["Cidrs"] == {"Fn::Join": ['","', {"Ref": "DefaultClientCidrs"}]}

    plan_key = props(resources["DefaultClientUsagePlanKey"])
    assert plan_key == {"KeyId": {"Ref": "DefaultClientUsageKey"}, "KeyType": "API_KEY",
                        "UsagePlanId": {"Ref": "ClientUsagePlan"}}
    plan = props(resources["ClientUsagePlan"])
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"}
    assert set(plan["Quota"]) == {"Limit", "Period"}


def test_default_client_api_key_is_generated_at_deploy_time(raw):
    secret = props(raw["Resources"]["DefaultClientSecret"])
    assert secret["Name"] == "keyrot/clients/default"
    assert "SecretString" not in secret
    assert secret["GenerateSecretString"] == {
        "SecretStringTemplate": '{"ClientId":"default"}',
        "GenerateStringKey": "ApiKey",
        "PasswordLength": 43,
        "ExcludePunctuation": True,
    }


# ------------------------------------------------------------------ functions


def test_functions_environment_contract(raw):
    for logical_id, contract in ENV_CONTRACT.items():
        variables = props(raw["Resources"][logical_id])["Environment"]["Variables"]
        for name, value in contract.items():
            assert variables.get(name) == value, (logical_id, name)


# ------------------------------------------------------------------ monitoring


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(raw):
    topic = props(raw["Resources"]["AlarmTopic"])
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = props(raw["Resources"]["AlarmTopicKey"])
    principals = [s["Principal"] for s in key["KeyPolicy"]["Statement"]]
    assert {"Service": "cloudwatch.amazonaws.com"} in principals


def test_outputs(raw):
    outputs = raw["Outputs"]
    assert outputs["DefaultClientApiKeyCommand"]["Value"] == (
        "aws secretsmanager get-secret-value --secret-id keyrot/clients/default "
        "--query SecretString --output text"
    )
    for name in ["ApiUrl", "DashboardUrl", "DefaultClientSecretArn", "SigningKeySecretArn", "ClientUsagePlanId",
                 "FleetFunctionName", "FleetFunctionArn", "RevokeRequestsSecretName"]:
        assert name in outputs


# ------------------------------------------------------------------ references


def referenced_ids(node):
    if isinstance(node, list):
        for item in node:
            yield from referenced_ids(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield value
            elif key == "Fn::GetAtt":
                yield value.split(".")[0] if isinstance(value, str) else value[0]
            elif key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                for name in re.findall(r"\$\{([^!}][^}]*)\}", text):
                    if name not in variables:
                        yield name.split(".")[0]
                yield from referenced_ids(variables)
            else:
                yield from referenced_ids(value)


def test_every_checkov_skip_says_why(rendered):
    skips = [
        (logical_id, skip)
        for logical_id, resource in rendered["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), (logical_id, skip)
        assert len(skip.get("comment", "")) >= 30, (logical_id, skip)


def test_dashboard_body_is_json_once_substituted(raw):
    body, variables = props(raw["Resources"]["Dashboard"])["DashboardBody"]["Fn::Sub"]
    assert set(variables) == {"Period"}
    rendered = body.replace("${Period}", "600")
    rendered = re.sub(r"\$\{[^}]+\}", "x", rendered)
    widgets = json.loads(rendered)["widgets"]
    titles = " ".join(w["properties"]["title"] for w in widgets)
    for topic in ["Rotation steps succeeded", "Rotation steps failed", "Authorizer", "API", "Fleet"]:
        assert topic in titles
    # rotation-fn's metrics have the dimension sets [] and [Step] only: no per-secret search.
    assert "SecretName" not in body
    assert "{keyrot,Step}" in body


# ------------------------------------------------------------------ issue 12 hardening


MANAGED_SECRETS_ARN = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:keyrot/iam/*"
}


def test_secrets_manager_may_invoke_rotation_only_for_keyrots_secrets(raw):
    # Issue 12, item 1: SourceArn as well as SourceAccount (Lambda matches it with ArnLike),
    # and the same secrets as the rotation role's Secrets Manager statement.
    resources = raw["Resources"]
    managed = props(resources["RotationFunctionSecretsManagerPermission"])
    signing = props(resources["SigningKeySecretsManagerPermission"])
    assert managed["SourceArn"] == MANAGED_SECRETS_ARN
    assert signing["SourceArn"] == {"Ref": "SigningKeySecret"}
    role = props(resources["RotationFunctionRole"])
    [secrets_policy] = [p for p in role["Policies"] if isinstance(p, dict) and p.get("PolicyName") == "keyrot-secrets"]
    [statement] = secrets_policy["PolicyDocument"]["Statement"]
    assert statement["Resource"][0] == MANAGED_SECRETS_ARN
    assert plain(statement["Resource"][1]["Fn::Sub"]).endswith(":secret:keyrot/signing-key-??????")


def secret_read_exceptions(policy):
    [statement] = props(policy)["ResourcePolicy"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Action"] == "secretsmanager:GetSecretValue"
    assert list(statement["Condition"]) == ["StringNotEquals"]
    assert props(policy)["BlockPublicPolicy"] is True
    return statement["Condition"]["StringNotEquals"]["aws:PrincipalArn"]


BREAK_GLASS = {"Fn::If": ["HasBreakGlass", {"Ref": "BreakGlassPrincipalArn"}, {"Ref": "AWS::NoValue"}]}


def roles_reading(template, arn_fragment):
    """Roles whose own policies allow GetSecretValue on a resource containing arn_fragment."""
    readers = set()
    for logical_id, document in iam_policy_documents(template):
        for statement in as_list(document["Statement"]):
            if "secretsmanager:GetSecretValue" not in as_list(statement["Action"]):
                continue
            if arn_fragment in json.dumps(statement["Resource"]):
                readers.add(logical_id)
    return readers


def test_user_list_parameters_refuse_spaces_empty_items_and_non_iam_characters(raw):
    # Issue 12, item 14. CloudFormation applies a CommaDelimitedList's AllowedPattern to
    # each item (DefaultClientUsers), a String's to the whole value (ManagedUsers, issue 19:
    # a list item pattern could not accept an empty list without accepting empty items).
    names = ["ci-bot", "svc.backup", "a+b=c@d_e", "x" * 64]
    bad_names = [" bob", "bob ", "a b", "x" * 65, 'a"b', "division/alice", "*"]
    client_users = raw["Parameters"]["DefaultClientUsers"]
    assert client_users["Type"] == "CommaDelimitedList"
    for good in client_users["Default"].split(",") + names:
        assert re.fullmatch(client_users["AllowedPattern"], good), good
    for bad in ["", *bad_names]:
        assert not re.fullmatch(client_users["AllowedPattern"], bad), bad
    seed = raw["Parameters"]["ManagedUsers"]
    assert seed["Type"] == "String"
    for good in ["", "alice", "alice,bob", ",".join(names)]:
        assert re.fullmatch(seed["AllowedPattern"], good), good
    for bad in [",", "alice,", ",alice", "alice,,bob", "alice, bob", *bad_names, *(f"alice,{b}" for b in bad_names)]:
        assert not re.fullmatch(seed["AllowedPattern"], bad), bad


def test_signing_key_rotation_waits_for_the_public_key_parameter(raw):
    # Issue 12, item 14: the first rotation's setSecret writes the parameter, so the
    # parameter must exist before the rotation can start.
    assert "SigningPublicKeysParameter" in depends_on(raw["Resources"]["SigningKeyRotation"])


def test_api_accepts_tls_1_2_and_later_only(translated):
    # Issue 12, item 14: the REST API itself (its default endpoint), not only a custom domain.
    [api] = of_type(translated, "AWS::ApiGateway::RestApi").values()
    assert props(api)["SecurityPolicy"] == "TLS_1_2"


# ------------------------------------------------------------------ issue 13: fleet scale


def _resolved_text(node):
    """A policy document as IAM would count it: compact JSON, pseudo parameters and ARNs filled
    in with plausible lengths."""
    text = json.dumps(node, separators=(",", ":"))
    text = re.sub(r'\{"Fn::Sub":("[^"]*")\}', r"\1", text)
    text = re.sub(r'\{"Fn::GetAtt":\["(\w+)","Arn"\]\}', r'"arn:aws:lambda:us-east-1:123456789012:function:keyrot-\1-ABCDEFGHIJKL"', text)
    text = re.sub(r'\{"Ref":"(\w+)"\}', r'"keyrot-\1-ABCDEFGHIJKL"', text)
    # EligibleUserPath at its longest (512 characters): the policies must fit for any path.
    return (text.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
            .replace("${AWS::Region}", "us-east-1").replace("${EligibleUserPath}", "/" + "p" * 510 + "/"))


def inline_policy_chars(template):
    """Characters of each role's inline policies (Policies plus AWS::IAM::RolePolicy on it)."""
    sizes = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props(resource).get("Policies", []):
                if isinstance(policy, dict) and "Fn::If" in policy:
                    policy = policy["Fn::If"][1]
                sizes[logical_id] = sizes.get(logical_id, 0) + len(_resolved_text(policy["PolicyDocument"]))
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::RolePolicy":
            role = props(resource)["RoleName"]["Ref"]
            sizes[role] = sizes.get(role, 0) + len(_resolved_text(props(resource)["PolicyDocument"]))
    return sizes


def test_stack_size_does_not_grow_with_the_users(raw):
    # Issue 13: no per-user resources, outputs or policy text, for 2 users as for 200.
    from conftest import render, translate

    assert not any(k.startswith("Fn::ForEach") for s in ("Resources", "Outputs") for k in raw.get(s, {}))
    assert "AWS::LanguageExtensions" not in as_list(raw["Transform"])
    few = translate(render(raw, [f"user{i}" for i in range(2)]))
    many = translate(render(raw, [f"user-{i}.x" for i in range(200)]))
    assert len(few["Resources"]) == len(many["Resources"])
    assert sorted(few["Resources"]) == sorted(many["Resources"])
    assert len(few["Outputs"]) == len(many["Outputs"])
    assert inline_policy_chars(few) == inline_policy_chars(many)
    assert len(many["Resources"]) < 100


def test_every_roles_inline_policies_fit_iams_limit(translated):
    # IAM: a role's inline policies total at most 10,240 characters (whitespace excluded).
    sizes = inline_policy_chars(translated)
    assert {"RotationFunctionRole", "FleetFunctionRole", "ApiFunctionRole"} <= set(sizes)
    for role, size in sizes.items():
        assert size < 10_240, (role, size)


def test_rotation_concurrency_default_follows_from_the_budgets(raw):
    # Issue 13: the dispatcher starts rotations at the tightest budget divided by that
    # service's calls per rotation; the rotation function must be able to run that many at once.
    import math
    from fractions import Fraction

    sizing = raw["Metadata"]["keyrot:RotationSizing"]
    default = lambda name: raw["Parameters"][name]["Default"]
    # Exact arithmetic: 10/3 in floating point would make ceil(100.00000000000001) = 101.
    rate = min(
        Fraction(default("IamWritesPerSecond"), sizing["IamWritesPerRotation"]),
        Fraction(default("SecretsWritesPerSecond"), sizing["SecretsWritesPerRotation"]),
        Fraction(default("RotateSecretPerSecond"), sizing["RotateSecretCallsPerRotation"]),
    )
    expected = math.ceil(rate * sizing["RotationSeconds"] * Fraction(sizing["SafetyPercent"], 100))
    assert default("RotationReservedConcurrency") == expected
    # Secrets Manager's own per-account rates (aws-facts.md) bound the two shares.
    assert raw["Parameters"]["SecretsWritesPerSecond"]["MaxValue"] == 50
    assert raw["Parameters"]["RotateSecretPerSecond"]["MaxValue"] == 50


def test_fleet_function_is_the_rotation_binary_built_once(raw):
    # Identical build definitions: sam build builds rotation-fn once for both functions.
    rotation, fleet = raw["Resources"]["RotationFunction"], raw["Resources"]["FleetFunction"]
    # SAM CLI compares the whole Metadata (build_graph.FunctionBuildDefinition.__eq__): any
    # difference, even in a checkov comment, builds rotation-fn twice.
    assert fleet["Metadata"] == rotation["Metadata"]
    for key in ("CodeUri", "Runtime", "Architectures", "Handler"):
        assert props(fleet)[key] == props(rotation)[key]
    assert fleet["Metadata"]["BuildProperties"] == {"Binary": "rotation-fn"}
    assert props(fleet)["Timeout"] == 900
    assert props(fleet)["ReservedConcurrentExecutions"] == 1
    assert props(fleet)["EventInvokeConfig"]["MaximumRetryAttempts"] == 0


def test_functions_build_their_own_binary(raw):
    for logical_id, binary in [("RotationFunction", "rotation-fn"), ("FleetFunction", "rotation-fn"),
                               ("AuthorizerFunction", "authorizer-fn"), ("ApiFunction", "api-fn")]:
        function = raw["Resources"][logical_id]
        assert function["Metadata"]["BuildMethod"] == "rust-cargolambda"
        assert function["Metadata"]["BuildProperties"] == {"Binary": binary}
        assert props(function)["CodeUri"] == f"{binary}/"
        assert props(function)["Runtime"] == "provided.al2023"
        assert props(function)["Handler"] == "bootstrap"
        assert props(function)["Architectures"] == [{"Ref": "Architecture"}]


def test_functions_have_explicit_roles(translated):
    # No SAM-generated role: it would attach AWSLambdaBasicExecutionRole (logs on "*").
    for logical_id in ["RotationFunction", "FleetFunction", "AuthorizerFunction", "ApiFunction"]:
        role = props(translated["Resources"][logical_id])["Role"]
        assert getatt_target(role) == f"{logical_id}Role"
        role_props = props(translated["Resources"][f"{logical_id}Role"])
        assert "ManagedPolicyArns" not in role_props


def test_every_log_group_has_retention_and_every_function_logs_to_one(raw):
    log_groups = of_type(raw, "AWS::Logs::LogGroup")
    assert len(log_groups) == 5
    for logical_id, group in log_groups.items():
        assert props(group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id
    for logical_id in ENV_CONTRACT:
        target = props(raw["Resources"][logical_id])["LoggingConfig"]["LogGroup"]
        assert target["Ref"] in log_groups, logical_id


def test_reconcile_schedule_invokes_the_fleet_every_minute_and_goes_before_teardown(raw):
    resources = raw["Resources"]
    schedules = of_type(raw, "AWS::Scheduler::Schedule")
    assert list(schedules) == ["FleetReconcileSchedule"]
    schedule = resources["FleetReconcileSchedule"]
    p = props(schedule)
    assert p["ScheduleExpression"] == "rate(1 minute)"
    assert p["FlexibleTimeWindow"] == {"Mode": "OFF"} and p["State"] == "ENABLED"
    assert p["GroupName"] == {"Ref": "RotationScheduleGroup"}
    target = p["Target"]
    assert getatt_target(target["Arn"]) == "FleetFunction"
    assert json.loads(target["Input"]) == {"Action": "Reconcile"}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] <= 1
    # Deleting the stack deletes the schedule first, then runs the teardown.
    assert depends_on(schedule) == ["FleetTeardown"]
    role = props(resources[getatt_target(target["RoleArn"])])
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
    assert trust[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert {"Fn::GetAtt": ["RotationScheduleGroup", "Arn"]} in trust[0]["Condition"]["ArnLike"]["aws:SourceArn"]
    statements = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    assert [(s["Effect"], s["Action"], getatt_target(s["Resource"])) for s in statements] == [
        ("Allow", "lambda:InvokeFunction", "FleetFunction")
    ]
    assert "ManagedPolicyArns" not in role


def test_teardown_custom_resource_is_served_by_the_fleet(raw):
    teardown = raw["Resources"]["FleetTeardown"]
    assert teardown["Type"] == "Custom::KeyrotFleetTeardown"
    assert getatt_target(props(teardown)["ServiceToken"]) == "FleetFunction"
    # CloudFormation waits as long as the function may run.
    assert props(teardown)["ServiceTimeout"] == props(raw["Resources"]["FleetFunction"])["Timeout"]


def test_users_per_interval_is_an_output_recomputed_when_its_settings_change(raw):
    # The fleet function answers Create and Update with the capacity of the settings it runs
    # with; each setting it depends on is a property, so that changing one sends an Update.
    teardown = props(raw["Resources"]["FleetTeardown"])
    env = props(raw["Resources"]["FleetFunction"])["Environment"]["Variables"]
    for parameter, variable in [
        ("RotationIntervalMinutes", "KEYROT_ROTATION_INTERVAL_MINUTES"),
        ("IamWritesPerSecond", "KEYROT_IAM_WRITES_PER_SECOND"),
        ("SecretsWritesPerSecond", "KEYROT_SECRETS_WRITES_PER_SECOND"),
        ("RotateSecretPerSecond", "KEYROT_ROTATE_SECRET_PER_SECOND"),
    ]:
        assert teardown[parameter] == {"Ref": parameter}
        assert env[variable] == {"Ref": parameter}, variable
    output = raw["Outputs"]["UsersPerInterval"]["Value"]
    assert output == {"Fn::GetAtt": ["FleetTeardown", "UsersPerInterval"]}


def test_only_the_signing_key_has_a_native_rotation_schedule(raw):
    # Managed secrets are the fleet's: their rotation is configured by RotateSecret.
    assert list(of_type(raw, "AWS::SecretsManager::RotationSchedule")) == ["SigningKeyRotation"]
    schedule = raw["Resources"]["SigningKeyRotation"]
    assert "SigningKeySecretsManagerPermission" in depends_on(schedule)
    assert getatt_target(props(schedule)["RotationLambdaARN"]) == "RotationFunction"
    permissions = sorted(k for k, p in of_type(raw, "AWS::Lambda::Permission").items()
                         if props(p)["Principal"] == "secretsmanager.amazonaws.com")
    assert permissions == ["RotationFunctionSecretsManagerPermission", "SigningKeySecretsManagerPermission"]


def test_managed_secrets_readers_are_handed_to_the_fleet(raw):
    # The fleet writes each managed secret's resource policy (deny GetSecretValue to all but
    # these): every keyrot role that reads managed secrets, and the break-glass principal.
    readers = roles_reading(raw, "keyrot/iam/")
    assert readers == {"ApiFunctionRole", "RotationFunctionRole"}
    variables = props(raw["Resources"]["FleetFunction"])["Environment"]["Variables"]
    condition, with_break_glass, without = variables["KEYROT_SECRET_READER_ARNS"]["Fn::If"]
    assert condition == "HasBreakGlass"
    arns = [{"Fn::GetAtt": [r, "Arn"]} for r in sorted(readers)]
    assert without == {"Fn::Join": [",", arns]}
    assert with_break_glass == {"Fn::Join": [",", arns + [{"Ref": "BreakGlassPrincipalArn"}]]}
    # The signing key stays a stack resource with its own policy.
    signing = raw["Resources"]["SigningKeySecretPolicy"]
    assert secret_read_exceptions(signing) == [
        {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}, {"Fn::GetAtt": ["RotationFunctionRole", "Arn"]}, BREAK_GLASS
    ]
    parameter = raw["Parameters"]["BreakGlassPrincipalArn"]
    pattern = parameter["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "arn:aws:iam::123456789012:role/ops/BreakGlass")
    # Commas would split the list.
    assert not re.fullmatch(pattern, "*") and not re.fullmatch(pattern, "arn:aws:iam::123456789012:role/a,b")


def test_customer_managed_key_is_optional_and_used_only_through_secrets_manager(raw):
    assert raw["Parameters"]["CustomerManagedSecretsKey"]["Default"] == "false"
    key = raw["Resources"]["ManagedSecretsKey"]
    assert key["Condition"] == "UsesSecretsKey"
    assert props(key)["EnableKeyRotation"] is True
    [use] = [s for s in props(key)["KeyPolicy"]["Statement"] if s["Sid"] == "KeyrotUsesThroughSecretsManager"]
    assert "kms:Decrypt" in use["Action"] and "kms:Encrypt" not in use["Action"]
    via = {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == via
    # The fleet creates the managed secrets under the key (KEYROT_SECRETS_KMS_KEY_ID), through
    # Secrets Manager only.
    [fleet_key] = [p["Fn::If"] for p in props(raw["Resources"]["FleetFunctionRole"])["Policies"] if "Fn::If" in p]
    assert fleet_key[0] == "UsesSecretsKey"
    [statement] = fleet_key[1]["PolicyDocument"]["Statement"]
    assert statement["Resource"] == {"Fn::GetAtt": ["ManagedSecretsKey", "Arn"]}
    assert statement["Condition"] == {"StringEquals": {"kms:ViaService": via}}
    secrets = of_type(raw, "AWS::SecretsManager::Secret")
    keyed = {k for k, s in secrets.items() if props(s).get("KmsKeyId") ==
             {"Fn::If": ["UsesSecretsKey", {"Ref": "ManagedSecretsKey"}, {"Ref": "AWS::NoValue"}]}}
    # Issue 19, item 3: the client secrets too (keyrot clients add: the SecretsKmsKeyArn output);
    # and the emergency revoke's requests.
    assert keyed == {"SigningKeySecret", "DefaultClientSecret", "RevokeRequestsSecret"} == set(secrets)
    assert raw["Outputs"]["SecretsKmsKeyArn"] == {
        "Condition": "UsesSecretsKey", "Description": raw["Outputs"]["SecretsKmsKeyArn"]["Description"],
        "Value": {"Fn::GetAtt": ["ManagedSecretsKey", "Arn"]}}
    # Every role that reads a secret under the key may decrypt through Secrets Manager.
    readers = set().union(*(roles_reading(raw, fragment) for fragment in ("keyrot/iam/", "keyrot/clients/")))
    assert {getatt_target(p) for p in use["Principal"]["AWS"] if "Fn::GetAtt" in p} == readers
    assert BREAK_GLASS in use["Principal"]["AWS"]


def test_fixed_alarms_cover_failures_staleness_and_the_fleet(raw):
    alarms = of_type(raw, "AWS::CloudWatch::Alarm")
    for logical_id, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in props(alarm)["AlarmActions"], logical_id
        # No alarm is about one secret.
        assert "SecretName" not in json.dumps(alarm), logical_id
    failures = props(alarms["RotationFailuresAlarm"])
    assert (failures["Namespace"], failures["MetricName"], failures["Statistic"]) == ("keyrot", "RotationStepFailed", "Sum")
    assert "Dimensions" not in failures and failures["Threshold"] == 1 and failures["Period"] == 300
    stale = props(alarms["StaleSecretsAlarm"])
    assert (stale["Namespace"], stale["MetricName"], stale["Statistic"]) == ("keyrot", "FleetStaleSecrets", "Maximum")
    assert "Dimensions" not in stale and stale["Threshold"] == 1
    assert stale["TreatMissingData"] == "breaching"  # a fleet that stopped reporting alarms
    assert 'secret_stale' in stale["AlarmDescription"]
    fleet = json.dumps(props(alarms["FleetErrorsAlarm"]))
    assert '"MetricName": "FleetErrors"' in fleet and '"Value": {"Ref": "FleetFunction"}' in fleet
    assert "SecretVersionBudgetAlarm" in alarms
    assert "RotationTickRefusedAlarm" not in alarms and not of_type(raw, "AWS::SQS::Queue")
    # More users than the budgets rotate in an interval: not a silent drift.
    cadence = props(alarms["FleetCadenceAlarm"])
    assert (cadence["Namespace"], cadence["MetricName"], cadence["Statistic"]) == ("keyrot", "FleetUsersBeyondCadence", "Maximum")
    assert "Dimensions" not in cadence and cadence["Threshold"] == 1
    assert "cadence_not_kept" in cadence["AlarmDescription"]


# ------------------------------------------------------------------ issue 19


def test_client_secrets_deny_reads_to_all_but_keyrots_api_roles_and_break_glass(raw):
    # 19.1 (item 3): the default client's secret carries the managed secrets' kind of resource
    # policy, naming exactly the roles whose own policies read keyrot/clients/* (the
    # authorizer's and api-fn's) and the break-glass principal. keyrot clients add writes the
    # same policy on the secrets it creates, from the ClientSecretReaderArns output.
    readers = roles_reading(raw, "keyrot/clients/")
    assert readers == {"AuthorizerFunctionRole", "ApiFunctionRole"}
    [policy] = [p for p in of_type(raw, "AWS::SecretsManager::ResourcePolicy").values()
                if props(p)["SecretId"] == {"Ref": "DefaultClientSecret"}]
    exceptions = secret_read_exceptions(policy)
    assert exceptions[-1] == BREAK_GLASS
    assert sorted(getatt_target(arn) for arn in exceptions[:-1]) == sorted(readers)
    arns = [{"Fn::GetAtt": [r, "Arn"]} for r in ("ApiFunctionRole", "AuthorizerFunctionRole")]
    assert exceptions[:-1] == arns
    condition, with_break_glass, without = raw["Outputs"]["ClientSecretReaderArns"]["Value"]["Fn::If"]
    assert condition == "HasBreakGlass"
    assert without == {"Fn::Join": [",", arns]}
    assert with_break_glass == {"Fn::Join": [",", arns + [{"Ref": "BreakGlassPrincipalArn"}]]}
    # Every secret of the stack has such a policy.
    protected = {props(p)["SecretId"]["Ref"] for p in of_type(raw, "AWS::SecretsManager::ResourcePolicy").values()}
    assert protected == set(of_type(raw, "AWS::SecretsManager::Secret"))


def _statements(role):
    policies = [p["Fn::If"][1] if "Fn::If" in p else p for p in props(role)["Policies"]]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_api_function_checks_callers_with_the_authorizers_rights_and_settings(raw):
    # 19.1 (item 3): api-fn re-checks the caller's API key, source IP and token itself, so it
    # reads the client registry exactly as the authorizer does (the same statements) and gets
    # the authorizer's settings, with the same values.
    resources = raw["Resources"]
    [authorizer_registry] = [p for p in props(resources["AuthorizerFunctionRole"])["Policies"]
                             if p["PolicyName"] == "client-registry"]
    [api_registry] = [p for p in props(resources["ApiFunctionRole"])["Policies"]
                      if p["PolicyName"] == "client-registry"]
    assert api_registry["PolicyDocument"] == authorizer_registry["PolicyDocument"]
    authorizer_env = props(resources["AuthorizerFunction"])["Environment"]["Variables"]
    api_env = props(resources["ApiFunction"])["Environment"]["Variables"]
    for name, value in authorizer_env.items():
        assert api_env.get(name) == value, name


def _authorizer_config_variables():
    """The environment variables AuthorizerConfig::from_env reads (keyrot/src/api/config.rs):
    the KEYROT_ constants named in its impl block."""
    import os

    root = os.path.join(os.path.dirname(__file__), "..", "..", "keyrot", "src")
    constants = {}
    for path in ("config.rs", os.path.join("api", "config.rs")):
        with open(os.path.join(root, path), encoding="utf-8") as source:
            text = source.read()
        constants.update(re.findall(r'pub const (\w+): &(?:\'static )?str = "(KEYROT_\w+)";', text))
        if path.endswith(os.path.join("api", "config.rs")):
            block = re.search(r"impl AuthorizerConfig \{(.*?)\n\}\n", text, re.S)
            assert block, "impl AuthorizerConfig not found in keyrot/src/api/config.rs"
            used = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\b", block.group(1)))
    return {constants[name] for name in used if name in constants}


def test_api_function_gets_every_setting_the_authorizer_config_reads(raw):
    # 19.1: what api-fn needs to build AuthorizerConfig::from_env, read from the code itself.
    variables = _authorizer_config_variables()
    assert {"KEYROT_ALLOWED_CIDRS", "KEYROT_TOKEN_ISSUER", "KEYROT_TOKEN_AUDIENCE"} <= variables, variables
    authorizer_env = props(raw["Resources"]["AuthorizerFunction"])["Environment"]["Variables"]
    api_env = props(raw["Resources"]["ApiFunction"])["Environment"]["Variables"]
    missing = sorted(v for v in variables if v not in api_env)
    assert not missing, missing
    for name in variables:
        assert api_env[name] == authorizer_env[name], name


NETWORK_PARAMETERS = ["AllowedCidrs", "DefaultClientCidrs"]


def test_networks_have_no_default_and_must_be_cidrs(raw):
    # 19.2 (item 3): a deployment names the networks that may call the API and the default
    # client's; the whole internet (0.0.0.0/0,::/0) is still allowed, as an explicit choice.
    for name in NETWORK_PARAMETERS:
        parameter = raw["Parameters"][name]
        assert "Default" not in parameter, name
        assert "0.0.0.0/0,::/0" in parameter["Description"], name
    whole = raw["Parameters"]["AllowedCidrs"]["AllowedPattern"]
    item = raw["Parameters"]["DefaultClientCidrs"]["AllowedPattern"]  # each item of the list
    for good in ["0.0.0.0/0,::/0", "203.0.113.0/24", "203.0.113.0/24,2001:db8::/32"]:
        assert re.fullmatch(whole, good), good
        assert all(re.fullmatch(item, cidr) for cidr in good.split(",")), good
    for bad in ["", " 10.0.0.0/8", "10.0.0.0/8,", 'a"b', "any"]:
        assert not re.fullmatch(whole, bad), bad
    for bad in ["", " 10.0.0.0/8", '10.0.0.0/8"', "any"]:
        assert not re.fullmatch(item, bad), bad


def _parameter_names(overrides):
    return set(re.findall(r'(?:^|\s|")([A-Za-z0-9]+)=', overrides))


def test_every_deploy_example_names_the_networks_and_every_required_parameter(raw):
    # 19.2: samconfig.toml's parameter_overrides example and docs/deploy.md's deploy commands
    # pass every parameter without a default (otherwise CloudFormation refuses the deploy).
    import os

    root = os.path.join(os.path.dirname(__file__), "..", "..")
    required = {name for name, p in raw["Parameters"].items() if "Default" not in p}
    assert required == {"AdminEmail", *NETWORK_PARAMETERS, "EligibleUserPath"}
    examples = []
    for path, pattern in [("samconfig.toml", r"^#?\s*parameter_overrides\s*=\s*(.*)"),
                          (os.path.join("docs", "deploy.md"), r"sam deploy .*--parameter-overrides\s+(.*)")]:
        with open(os.path.join(root, path), encoding="utf-8") as text:
            examples += [(path, found.group(1)) for line in text if (found := re.search(pattern, line))]
    assert {path for path, _ in examples} == {"samconfig.toml", os.path.join("docs", "deploy.md")}, examples
    for path, overrides in examples:
        assert required <= _parameter_names(overrides), (path, overrides)


def test_seed_user_list_defaults_to_empty_and_the_stack_deploys_without_seed_users(raw):
    # 19.3 (item 10): no user is managed unless someone names it. With the empty default the
    # transform still works, the fleet gets an empty KEYROT_SEED_USERS (which it reads as no
    # user), and the stack is the same as with seed users.
    from conftest import render, translate

    assert raw["Parameters"]["ManagedUsers"]["Default"] == ""
    assert re.fullmatch(raw["Parameters"]["ManagedUsers"]["AllowedPattern"], "")
    none = translate(render(raw, []))
    two = translate(render(raw, ["alice", "bob"]))
    assert sorted(none["Resources"]) == sorted(two["Resources"])
    assert props(none["Resources"]["FleetFunction"])["Environment"]["Variables"]["KEYROT_SEED_USERS"] == ""
    assert props(two["Resources"]["FleetFunction"])["Environment"]["Variables"]["KEYROT_SEED_USERS"] == "alice,bob"
    # No condition, output or other resource depends on the seed list.
    references = [k for k, r in raw["Resources"].items() if "ManagedUsers" in set(referenced_ids(r))]
    assert references == ["FleetFunction"]
    assert "ManagedUsers" not in set(referenced_ids(raw.get("Conditions", {})))
    assert "ManagedUsers" not in set(referenced_ids(raw["Outputs"]))


def test_session_deny_policy_is_the_one_policy_the_fleet_may_attach(raw):
    # 19.4 (item 7): one managed policy owned by the stack denies whatever a managed user signs
    # with temporary credentials; the fleet knows its ARN and may attach and detach it only
    # (simulated in test_policy_simulation.py).
    policy = raw["Resources"]["ManagedUserSessionDenyPolicy"]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    [statement] = props(policy)["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Action"], statement["Resource"]) == ("Deny", "*", "*")
    assert statement["Condition"] == {"Null": {"aws:TokenIssueTime": "false"}}
    # Nothing else of the stack attaches it: only the fleet, at run time.
    assert "Users" not in props(policy) and "Roles" not in props(policy) and "Groups" not in props(policy)
    variables = props(raw["Resources"]["FleetFunction"])["Environment"]["Variables"]
    assert variables["KEYROT_SESSION_DENY_POLICY_ARN"] == {"Ref": "ManagedUserSessionDenyPolicy"}
    attach = [s for s in _statements(raw["Resources"]["FleetFunctionRole"])
              if {"iam:AttachUserPolicy", "iam:DetachUserPolicy"} & set(as_list(s["Action"]))]
    assert len(attach) == 1
    assert sorted(as_list(attach[0]["Action"])) == ["iam:AttachUserPolicy", "iam:DetachUserPolicy"]
    assert attach[0]["Condition"]["ArnEquals"] == {"iam:PolicyARN": {"Ref": "ManagedUserSessionDenyPolicy"}}
    assert attach[0]["Condition"]["StringEquals"] == {"aws:ResourceTag/keyrot:managed": "keyrot/iam/"}
    # No other role may attach or detach user policies.
    for logical_id, document in iam_policy_documents(raw):
        for s in as_list(document["Statement"]):
            if logical_id != "FleetFunctionRole" and s["Effect"] == "Allow":
                assert not {"iam:AttachUserPolicy", "iam:DetachUserPolicy", "iam:PutUserPolicy"} & set(
                    as_list(s["Action"])), logical_id


def test_only_aws_services_are_granted_invocation_by_the_stack(translated):
    # 19.5 (item 1): invoking a keyrot function is an operator right (docs/deploy.md, "Who may
    # invoke keyrot's functions"). The stack grants it only to AWS service principals (API
    # Gateway, Secrets Manager), each limited to its source, and to keyrot's own roles through
    # their policies; it has no function URL.
    for logical_id, permission in of_type(translated, "AWS::Lambda::Permission").items():
        p = props(permission)
        assert p["Action"] == "lambda:InvokeFunction", logical_id
        assert p["Principal"].endswith(".amazonaws.com"), logical_id
        assert "SourceArn" in p, logical_id
    assert not of_type(translated, "AWS::Lambda::Url")
    for function in of_type(translated, "AWS::Lambda::Function").values():
        assert "FunctionUrlConfig" not in props(function)
    invokers = {logical_id for logical_id, document in iam_policy_documents(translated)
                for s in as_list(document["Statement"])
                if s["Effect"] == "Allow" and "lambda:InvokeFunction" in as_list(s["Action"])}
    # RotationRevokeAccess is the rotation role's policy (the emergency revoke's RotateSecret).
    assert invokers == {"RotationRevokeAccess", "FleetFunctionRole", "FleetScheduleRole"}
    for role in ("RotationFunctionRole", "FleetFunctionRole", "FleetScheduleRole"):
        assert translated["Outputs"][f"{role}Arn"]["Value"] == {"Fn::GetAtt": [role, "Arn"]}
    for function in ("RotationFunction", "FleetFunction", "AuthorizerFunction", "ApiFunction"):
        assert translated["Outputs"][f"{function}Arn"]["Value"] == {"Fn::GetAtt": [function, "Arn"]}


# ------------------------------------------------------------------ the emergency revoke's gate

REVOKE_REQUESTS_SECRET = "keyrot/revoke-requests"
REQUEST_WRITES = {"secretsmanager:PutSecretValue", "secretsmanager:UpdateSecret",
                  "secretsmanager:UpdateSecretVersionStage", "secretsmanager:RestoreSecret",
                  "secretsmanager:TagResource", "secretsmanager:UntagResource"}


def test_emergency_revoke_is_gated_on_a_request_only_revoke_principals_write(raw):
    # Security issue, item 2: rotation-fn revokes only on a fresh request in
    # keyrot/revoke-requests naming the same secret and key. What the policy decides is
    # simulated in test_policy_simulation.py; here the wiring.
    resources = raw["Resources"]
    secret = props(resources["RevokeRequestsSecret"])
    assert secret["Name"] == REVOKE_REQUESTS_SECRET and secret["Description"]
    # Written by CloudFormation once, at creation (before the policy that would deny the
    # deployer exists): a constant, never generated, so stack updates leave it alone.
    assert secret["SecretString"] == "{}" and "GenerateSecretString" not in secret
    # rotation-fn reads it by name; the fleet (the same binary) does not revoke.
    env = props(resources["RotationFunction"])["Environment"]["Variables"]
    assert env["KEYROT_REVOKE_REQUESTS_SECRET"] == REVOKE_REQUESTS_SECRET
    fleet_env = props(resources["FleetFunction"])["Environment"]["Variables"]
    assert "KEYROT_REVOKE_REQUESTS_SECRET" not in fleet_env
    # Only the rotation role's revoke policy reads it, by the secret's ARN (Ref), and nothing
    # of the stack writes it.
    readers = roles_reading(raw, "RevokeRequestsSecret") | roles_reading(raw, "revoke-requests")
    assert readers == {"RotationRevokeAccess"}
    assert props(resources["RotationRevokeAccess"])["RoleName"] == {"Ref": "RotationFunctionRole"}
    [read] = [s for s in props(resources["RotationRevokeAccess"])["PolicyDocument"]["Statement"]
              if s.get("Sid") == "ReadRevokeRequests"]
    assert (read["Effect"], read["Action"], read["Resource"]) == (
        "Allow", "secretsmanager:GetSecretValue", {"Ref": "RevokeRequestsSecret"})
    for logical_id, document in iam_policy_documents(raw):
        for statement in as_list(document["Statement"]):
            if statement["Effect"] == "Allow" and re.search(r"revoke-?requests", json.dumps(statement), re.I):
                assert not REQUEST_WRITES & set(as_list(statement["Action"])), logical_id
    # Under the stack's KMS key, the rotation role decrypts it through Secrets Manager.
    [use] = [s for s in props(resources["ManagedSecretsKey"])["KeyPolicy"]["Statement"]
             if s["Sid"] == "KeyrotUsesThroughSecretsManager"]
    assert {"Fn::GetAtt": ["RotationFunctionRole", "Arn"]} in use["Principal"]["AWS"]
    # The policy: writes denied to all but RevokePrincipalArns, to everyone when it is empty
    # (no condition at all); never the stack's own operations on the secret.
    policy = props(resources["RevokeRequestsSecretPolicy"])
    assert policy["SecretId"] == {"Ref": "RevokeRequestsSecret"} and policy["BlockPublicPolicy"] is True
    write, read = policy["ResourcePolicy"]["Statement"]
    assert (write["Effect"], write["Principal"], write["Resource"]) == ("Deny", "*", "*")
    assert set(write["Action"]) == REQUEST_WRITES
    assert write["Condition"] == {"Fn::If": [
        "HasRevokePrincipals",
        {"StringNotEquals": {"aws:PrincipalArn": {"Fn::Split": [",", {"Ref": "RevokePrincipalArns"}]}}},
        {"Ref": "AWS::NoValue"}]}
    assert raw["Conditions"]["HasRevokePrincipals"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "RevokePrincipalArns"}, ""]}]}
    assert (read["Effect"], read["Principal"], read["Action"]) == ("Deny", "*", "secretsmanager:GetSecretValue")
    denied = {a for s in policy["ResourcePolicy"]["Statement"] for a in as_list(s["Action"])}
    assert not denied & {"secretsmanager:DeleteSecret", "secretsmanager:PutResourcePolicy",
                         "secretsmanager:DeleteResourcePolicy", "secretsmanager:DescribeSecret"}
    assert raw["Outputs"]["RevokeRequestsSecretName"]["Value"] == REVOKE_REQUESTS_SECRET


def test_revoke_principals_are_exact_role_or_user_arns_and_default_to_nobody(raw):
    parameter = raw["Parameters"]["RevokePrincipalArns"]
    assert parameter["Type"] == "String" and parameter["Default"] == ""
    pattern = parameter["AllowedPattern"]
    role = "arn:aws:iam::123456789012:role/KeyrotOperator"
    user = "arn:aws:iam::123456789012:user/ops/oncall"
    sso = "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_Admin_0123abcd"
    for good in ["", role, user, sso, f"{role},{user}", f"{role},{user},{sso}",
                 "arn:aws-us-gov:iam::210987654321:role/Responder"]:
        assert re.fullmatch(pattern, good), good
    for bad in [",", f"{role},", f",{role}", f"{role},,{user}", f"{role}, {user}", f" {role}", "*",
                "arn:aws:iam::123456789012:role/*", "arn:aws:iam::123456789012:root",
                "arn:aws:iam::123456789012:group/ops", "KeyrotOperator",
                "arn:aws:sts::123456789012:assumed-role/KeyrotOperator/alice"]:
        assert not re.fullmatch(pattern, bad), bad


# ------------------------------------------------------------------ which users keyrot may manage

ELIGIBLE_USERS_ARN = "arn:${AWS::Partition}:iam::${AWS::AccountId}:user${EligibleUserPath}*"


def test_eligible_user_path_is_required_and_an_iam_path_without_wildcards(raw):
    # Security issue, item 5: the deployment chooses which users keyrot may manage, as it names
    # its networks: no default, "/" (every user) only as an explicit choice. The path goes into
    # the roles' user ARNs, so no wildcard ("*", "?") nor policy variable ("${...}") may get in.
    parameter = raw["Parameters"].get("EligibleUserPath")
    assert parameter, "no EligibleUserPath parameter"
    assert parameter["Type"] == "String" and "Default" not in parameter
    assert parameter["MaxLength"] == 512
    pattern = parameter["AllowedPattern"]
    for good in ["/", "/keyrot-managed/", "/keyrot-managed/team-a/", "/division_1/ci+bots@x.y=z,w/",
                 "/" + "a" * 510 + "/"]:
        assert re.fullmatch(pattern, good), good
        assert len(good) <= parameter["MaxLength"]
    for bad in ["", "keyrot-managed", "/keyrot-managed", "keyrot-managed/", "//", "/*/", "/keyrot*/",
                "/a?/", "/${aws:username}/", "/$/", "/a b/", "/a\tb/", "/\u00e9/", "/a/\n"]:
        assert not re.fullmatch(pattern, bad), bad
    description = parameter["Description"]
    for promise in ["Required.", "/keyrot-managed/", "/ means every user", "nested",
                    "aws iam update-user --user-name U --new-path /keyrot-managed/",
                    "cannot change a user's path"]:
        assert promise in " ".join(description.split()), promise


def test_every_statement_on_iam_users_is_limited_to_the_eligible_path(raw):
    # Every Allow of an IAM action, in every policy of the stack, names the users under
    # EligibleUserPath (that path and the ones nested in it: IAM's * spans slashes), with its
    # conditions kept. One exception, which only reads: the fleet's GetUser on every user
    # (CheckUsers: onboarding logs a clear refusal of a user outside the path; offboarding and
    # the teardown read the keyrot:managed tag). The simulations are in test_policy_simulation.py.
    limited, wide = set(), set()
    for logical_id, document in iam_policy_documents(raw):
        for statement in as_list(document["Statement"]):
            actions = as_list(statement["Action"])
            if statement["Effect"] != "Allow" or not any(a.startswith("iam:") for a in actions):
                continue
            assert all(a.startswith("iam:") for a in actions), (logical_id, actions)
            resources = as_list(statement["Resource"])
            if resources == [{"Fn::Sub": ELIGIBLE_USERS_ARN}]:
                limited.add((logical_id, statement.get("Sid")))
            else:
                assert (logical_id, statement.get("Sid"), actions) == ("FleetFunctionRole", "CheckUsers", ["iam:GetUser"]), (
                    logical_id, statement.get("Sid"), resources)
                assert resources == [{"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:user/*"}]
                wide.add((logical_id, statement.get("Sid")))
    assert limited == {("RotationFunctionRole", "ManageManagedUsersKeys"), ("FleetFunctionRole", "EnrolUsers"),
                       ("FleetFunctionRole", "ReleaseManagedUsers"),
                       ("FleetFunctionRole", "DenyManagedUsersSessions")}, limited
    assert wide == {("FleetFunctionRole", "CheckUsers")}
    # Any IAM path matches user${EligibleUserPath}* only for its own users and its sub-paths.
    arn = "arn:aws:iam::123456789012:user"
    for path, inside, outside in [
            ("/keyrot-managed/", ["/keyrot-managed/alice", "/keyrot-managed/a/b/alice"],
             ["/alice", "/admin", "/keyrot-managed", "/keyrot-managed-x/alice", "/other/keyrot-managed/alice"]),
            ("/", ["/alice", "/keyrot-managed/alice"], [])]:
        pattern = ELIGIBLE_USERS_ARN.replace("arn:${AWS::Partition}:iam::${AWS::AccountId}:user", arn).replace(
            "${EligibleUserPath}", path)
        assert all(iam_arn_matches(pattern, arn + user) for user in inside), path
        assert not any(iam_arn_matches(pattern, arn + user) for user in outside), path

