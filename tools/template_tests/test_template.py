"""Properties of template.yaml that no validator checks but keyrot depends on: rotation
cadence and wiring, least privilege, the API's authorizer and key source, the functions'
environment contract, alarms and logs. Each test reads the template as written (raw), after
the per-user loop (expanded) or after the SAM transform (translated); see conftest.py."""

import json
import re

READ_PREFIXES = ("Get", "List", "Describe")
UNIVERSAL_ROTATE = {"Fn::Sub": "arn:${AWS::Partition}:scheduler:::aws-sdk:secretsmanager:rotateSecret"}
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


def managed_user_resources(expanded, user_key, resource_type):
    """The one resource of this type generated for a user (logical ids strip non-alphanumerics)."""
    plain = re.sub(r"[^A-Za-z0-9]", "", user_key)
    found = {k: v for k, v in of_type(expanded, resource_type).items() if k.endswith(plain)}
    assert len(found) == 1, (user_key, resource_type, list(found))
    return next(iter(found.items()))


# ------------------------------------------------------------------ rotation cadence


def test_scheduler_rate_is_the_interval_parameter(expanded):
    schedules = of_type(expanded, "AWS::Scheduler::Schedule")
    assert len(schedules) == 3
    for schedule in schedules.values():
        assert props(schedule)["ScheduleExpression"] == {
            "Fn::Sub": "rate(${RotationIntervalMinutes} minutes)"
        }
        assert props(schedule)["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert props(schedule)["State"] == "ENABLED"


def test_scheduler_calls_rotate_secret_on_its_own_users_secret_and_dead_letters_refusals(expanded):
    for user in ["alice", "ci-bot", "svc.backup"]:
        _, schedule = managed_user_resources(expanded, user, "AWS::Scheduler::Schedule")
        rotation_id, rotation = managed_user_resources(
            expanded, user, "AWS::SecretsManager::RotationSchedule"
        )
        secret_id, secret = managed_user_resources(expanded, user, "AWS::SecretsManager::Secret")
        target = props(schedule)["Target"]
        assert target["Arn"] == UNIVERSAL_ROTATE
        # The RotationSchedule's Id is its secret's ARN; naming it also orders the schedule
        # after rotation is configured (RotateSecret is refused before).
        assert target["Input"] == {"Fn::Sub": '{"SecretId":"${%s.Id}"}' % rotation_id}
        assert getatt_target(props(rotation)["SecretId"]) == secret_id
        assert plain(props(secret)["Name"]) == f"keyrot/iam/{user}"
        # A tick refused by a rotation in progress is retried within minutes, then counted
        # in the dead-letter queue, whose alarm tells the operator.
        assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 300}
        assert getatt_target(target["DeadLetterConfig"]["Arn"]) == "RotationTickDeadLetterQueue"
    alarm = expanded["Resources"]["RotationTickRefusedAlarm"]["Properties"]
    assert alarm["Namespace"] == "AWS/SQS"
    assert getatt_target(alarm["Dimensions"][0]["Value"]) == "RotationTickDeadLetterQueue"
    assert alarm["Threshold"] == 1


def test_scheduler_role_may_only_rotate_its_users_secret(expanded):
    for user in ["alice", "ci-bot"]:
        _, schedule = managed_user_resources(expanded, user, "AWS::Scheduler::Schedule")
        secret_id, _ = managed_user_resources(expanded, user, "AWS::SecretsManager::Secret")
        role = expanded["Resources"][getatt_target(props(schedule)["Target"]["RoleArn"])]
        assert role["Type"] == "AWS::IAM::Role"
        trust = props(role)["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "scheduler.amazonaws.com"}]
        # Confused deputy: this account's keyrot schedule group only (the group's ARN is what
        # the scheduler passes as aws:SourceArn; the schedule pattern covers the schedule's).
        assert trust[0]["Condition"] == {
            "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
            "ArnLike": {"aws:SourceArn": [
                {"Fn::GetAtt": ["RotationScheduleGroup", "Arn"]},
                {"Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}"
                            ":schedule/${RotationScheduleGroup}/*"},
            ]},
        }
        assert props(schedule)["GroupName"] == {"Ref": "RotationScheduleGroup"}
        assert expanded["Resources"]["RotationScheduleGroup"]["Type"] == "AWS::Scheduler::ScheduleGroup"
        statements = [s for p in props(role)["Policies"] for s in p["PolicyDocument"]["Statement"]]
        assert all(s["Effect"] == "Allow" for s in statements)
        grants = sorted((tuple(as_list(s["Action"])), getatt_target(s["Resource"])) for s in statements)
        # RotateSecret requires its caller to be allowed to invoke the rotation function too.
        assert grants == [
            (("lambda:InvokeFunction",), "RotationFunction"),
            (("secretsmanager:RotateSecret",), secret_id),
            (("sqs:SendMessage",), "RotationTickDeadLetterQueue"),
        ]
        assert "ManagedPolicyArns" not in props(role)


def test_managed_secrets_start_with_only_the_user_name(expanded):
    secrets = {
        plain(props(s)["Name"]): props(s) for s in of_type(expanded, "AWS::SecretsManager::Secret").values()
    }
    for user in ["alice", "ci-bot", "svc.backup"]:
        secret = secrets[f"keyrot/iam/{user}"]
        assert json.loads(plain(secret["SecretString"])) == {"UserName": user}


def test_native_schedules_use_the_rotation_function_after_its_permission(expanded):
    permissions = [
        (k, props(p))
        for k, p in of_type(expanded, "AWS::Lambda::Permission").items()
        if props(p)["Principal"] == "secretsmanager.amazonaws.com"
    ]
    # One for the managed secrets, one for the signing key.
    assert sorted(k for k, _ in permissions) == [
        "RotationFunctionSecretsManagerPermission", "SigningKeySecretsManagerPermission"
    ]
    for _, permission in permissions:
        assert permission["SourceAccount"] == {"Ref": "AWS::AccountId"}
        assert permission["Action"] == "lambda:InvokeFunction"
        assert getatt_target(permission["FunctionName"]) == "RotationFunction"

    schedules = of_type(expanded, "AWS::SecretsManager::RotationSchedule")
    assert len(schedules) == 4  # three managed users and the signing key
    for schedule_id, schedule in schedules.items():
        permission_id = (
            "SigningKeySecretsManagerPermission" if schedule_id == "SigningKeyRotation"
            else "RotationFunctionSecretsManagerPermission"
        )
        assert permission_id in depends_on(schedule), schedule_id
        assert getatt_target(props(schedule)["RotationLambdaARN"]) == "RotationFunction"
        assert isinstance(props(schedule)["RotateImmediatelyOnUpdate"], bool)
        if schedule_id != "SigningKeyRotation":
            # Counted from the last rotation, so with the longest value Secrets Manager
            # accepts the tick always comes first: no native rotation between ticks.
            assert props(schedule)["RotationRules"] == {"AutomaticallyAfterDays": 1000}


def test_rotation_function_knows_the_interval_it_keeps_promises_for(expanded):
    function = expanded["Resources"]["RotationFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    api = expanded["Resources"]["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["KEYROT_ROTATION_INTERVAL_MINUTES"] == {"Ref": "RotationIntervalMinutes"}
    assert api["KEYROT_ROTATION_INTERVAL_MINUTES"] == {"Ref": "RotationIntervalMinutes"}
    wait_s = int(variables["KEYROT_PROMISE_WAIT_MAX_MS"]) // 1000
    verify_s = int(variables["KEYROT_VERIFY_MAX_WAIT_MS"]) // 1000
    # One invocation runs one step: the longer of the two waits plus the calls' retries.
    assert function["Timeout"] >= max(wait_s, verify_s) + 60


def test_version_budget_alarm_watches_the_highest_version_count(expanded):
    alarm = expanded["Resources"]["SecretVersionBudgetAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("keyrot", "SecretVersionCount")
    assert alarm["Statistic"] == "Maximum" and "Dimensions" not in alarm
    assert alarm["Threshold"] < 100


def test_native_schedule_waits_for_its_users_iam_access(expanded):
    for user in ["alice", "svc.backup"]:
        _, schedule = managed_user_resources(expanded, user, "AWS::SecretsManager::RotationSchedule")
        policy_id, policy = managed_user_resources(expanded, user, "AWS::IAM::RolePolicy")
        assert policy_id in depends_on(schedule)
        assert props(policy)["RoleName"] == {"Ref": "RotationFunctionRole"}
        statements = props(policy)["PolicyDocument"]["Statement"]
        assert {a for s in statements for a in s["Action"]} == {
            "iam:GetUser", "iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
            "iam:GetAccessKeyLastUsed", "iam:ListUserTags", "iam:TagUser", "iam:UntagUser",
        }


def iam_arn_matches(pattern, arn):
    """IAM's resource matching: * spans any characters (slashes too), ? exactly one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def user_policy_resources(expanded, user):
    _, policy = managed_user_resources(expanded, user, "AWS::IAM::RolePolicy")
    for statement in props(policy)["PolicyDocument"]["Statement"]:
        patterns = [r["Fn::Sub"].replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
                    for r in as_list(statement["Resource"])]
        yield statement, patterns


def test_user_policy_matches_the_user_with_or_without_a_path_and_no_one_else(expanded):
    # Issue 12, item 5: user ARNs carry the path (user/division/alice).
    for user in ["alice", "ci-bot", "svc.backup"]:
        for statement, patterns in user_policy_resources(expanded, user):
            matches = lambda arn: any(iam_arn_matches(p, arn) for p in patterns)
            for path in ["", "division/", "a/b/"]:
                assert matches(f"arn:aws:iam::123456789012:user/{path}{user}"), (statement["Sid"], path)
            for other in [f"x{user}", f"{user}x", f"division/{user}x", f"{user}/other"]:
                assert not matches(f"arn:aws:iam::123456789012:user/{other}"), (statement["Sid"], other)


def test_user_policy_stays_small_enough_for_twenty_users(expanded):
    # IAM: a role's inline policies total at most 10,240 characters (whitespace excluded).
    _, policy = managed_user_resources(expanded, "alice", "AWS::IAM::RolePolicy")
    text = json.dumps(props(policy)["PolicyDocument"], separators=(",", ":"))
    text = re.sub(r'\{"Fn::Sub":("[^"]*")\}', r"\1", text)
    text = text.replace("${AWS::Partition}", "aws").replace("${AWS::AccountId}", "123456789012")
    assert len(text) <= 450, len(text)


def test_tag_writes_are_limited_to_the_tag_keys_keyrot_writes(expanded):
    # Issue 12, item 3: key marks (tag key = an IAM user access key id, AKIA + 16) and
    # creation intents (keyrot:creating:<token>, iam_key/ledger.rs); nothing else.
    # One statement for all of the user's actions (inline policy size): ForAllValues holds
    # for requests without aws:TagKeys, so only TagUser/UntagUser are restricted by it.
    for user in ["alice", "ci-bot"]:
        tagging = [s for s, _ in user_policy_resources(expanded, user)
                   if {"iam:TagUser", "iam:UntagUser"} & set(s["Action"])]
        assert len(tagging) == 1
        [statement] = tagging
        assert list(statement["Condition"]) == ["ForAllValues:StringLike"]
        allowed = statement["Condition"]["ForAllValues:StringLike"]["aws:TagKeys"]
        may_write = lambda key: any(iam_arn_matches(p, key) for p in allowed)
        assert may_write("AKIAIOSFODNN7EXAMPLE")
        assert may_write("keyrot:creating:0b2c9a4e-1111-2222-3333-444455556666")
        for key in ["team", "Role", "AKIA", "AKIAIOSFODNN7EXAMPLEX", "ASIAIOSFODNN7EXAMPLE",
                    "keyrot:managed", "xkeyrot:creating:t"]:
            assert not may_write(key), key


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


def test_functions_have_explicit_roles(translated):
    # No SAM-generated role: it would attach AWSLambdaBasicExecutionRole (logs on "*").
    for logical_id in ["RotationFunction", "AuthorizerFunction", "ApiFunction"]:
        role = props(translated["Resources"][logical_id])["Role"]
        assert getatt_target(role) == f"{logical_id}Role"
        role_props = props(translated["Resources"][f"{logical_id}Role"])
        assert "ManagedPolicyArns" not in role_props


def test_api_function_reads_only_managed_keys_and_signing_key(raw):
    role = props(raw["Resources"]["ApiFunctionRole"])
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    secret_reads = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert len(secret_reads) == 1
    assert as_list(secret_reads[0]["Action"]) == ["secretsmanager:GetSecretValue"]
    assert as_list(secret_reads[0]["Resource"]) == [
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:keyrot/iam/*"},
        {"Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:keyrot/signing-key-??????"},
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
    # substitutes for the Ref here.
    cidrs = {"Fn::Split": [",", "0.0.0.0/0,::/0"]}
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


def test_functions_build_their_own_binary(raw):
    for logical_id, binary in [("RotationFunction", "rotation-fn"), ("AuthorizerFunction", "authorizer-fn"),
                               ("ApiFunction", "api-fn")]:
        function = raw["Resources"][logical_id]
        assert function["Metadata"]["BuildMethod"] == "rust-cargolambda"
        assert function["Metadata"]["BuildProperties"] == {"Binary": binary}
        assert props(function)["CodeUri"] == f"{binary}/"
        assert props(function)["Runtime"] == "provided.al2023"
        assert props(function)["Handler"] == "bootstrap"
        assert props(function)["Architectures"] == [{"Ref": "Architecture"}]


def test_every_log_group_has_retention_and_every_function_logs_to_one(raw, expanded):
    log_groups = of_type(expanded, "AWS::Logs::LogGroup")
    assert len(log_groups) == 4
    for logical_id, group in log_groups.items():
        assert props(group)["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical_id
    for logical_id in ENV_CONTRACT:
        target = props(raw["Resources"][logical_id])["LoggingConfig"]["LogGroup"]
        assert target["Ref"] in log_groups, logical_id


# ------------------------------------------------------------------ monitoring


def test_every_alarm_notifies_the_topic(expanded):
    alarms = of_type(expanded, "AWS::CloudWatch::Alarm")
    # Per user: failure and staleness; plus signing key, three function errors, 5xx, 4xx,
    # throttles, refused ticks and the version budget.
    assert len(alarms) == 2 * 3 + 9
    for logical_id, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in props(alarm)["AlarmActions"], logical_id


def test_stale_alarm_spans_two_intervals_of_missing_success(raw, expanded):
    intervals = raw["Parameters"]["RotationIntervalMinutes"]["AllowedValues"]
    periods = raw["Mappings"]["IntervalSeconds"]
    # The mapping is the arithmetic CloudFormation lacks: one interval in seconds.
    assert {k: v["Seconds"] for k, v in periods.items()} == {m: int(m) * 60 for m in intervals}
    for user in ["alice", "ci-bot"]:
        stale = [props(a) for k, a in of_type(expanded, "AWS::CloudWatch::Alarm").items()
                 if k.startswith("RotationStaleAlarm") and k.endswith(re.sub(r"\W", "", user))]
        assert len(stale) == 1
        alarm = stale[0]
        assert alarm["MetricName"] == "RotationCompleted"  # emitted by rotation-fn on finishSecret only
        assert alarm["Dimensions"] == [{"Name": "SecretName", "Value": {"Fn::Sub": f"keyrot/iam/{user}"}}]
        assert alarm["TreatMissingData"] == "breaching"
        assert alarm["EvaluationPeriods"] == 2 and alarm["DatapointsToAlarm"] == 2
        assert alarm["Period"] == {"Fn::FindInMap": ["IntervalSeconds", {"Ref": "RotationIntervalMinutes"}, "Seconds"]}


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
    for name in ["ApiUrl", "DashboardUrl", "DefaultClientSecretArn", "SigningKeySecretArn", "ClientUsagePlanId"]:
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


def test_every_reference_resolves_for_users_with_punctuation(translated):
    known = set(translated["Resources"]) | set(translated["Parameters"])
    for logical_id, resource in translated["Resources"].items():
        for target in depends_on(resource):
            assert target in known, (logical_id, target)
        for target in referenced_ids({k: v for k, v in resource.items() if k != "DependsOn"}):
            assert target in known or target.startswith("AWS::"), (logical_id, target)
    for name, output in translated["Outputs"].items():
        for target in referenced_ids(output):
            assert target in known or target.startswith("AWS::"), (name, target)


def test_every_checkov_skip_says_why(expanded):
    skips = [
        (logical_id, skip)
        for logical_id, resource in expanded["Resources"].items()
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
    for topic in ["Rotation steps succeeded", "Rotation steps failed", "Authorizer", "API"]:
        assert topic in titles


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


def test_managed_secrets_deny_reads_to_all_but_keyrot_and_break_glass(expanded):
    # Issue 12, item 4: every managed secret has a resource policy, and every keyrot role that
    # reads managed secrets is among its exceptions (nothing keyrot needs breaks).
    readers = roles_reading(expanded, "keyrot/iam/")
    assert readers == {"ApiFunctionRole", "RotationFunctionRole"}
    for user in ["alice", "ci-bot", "svc.backup"]:
        secret_id, _ = managed_user_resources(expanded, user, "AWS::SecretsManager::Secret")
        _, policy = managed_user_resources(expanded, user, "AWS::SecretsManager::ResourcePolicy")
        assert getatt_target(props(policy)["SecretId"]) == secret_id
        exceptions = secret_read_exceptions(policy)
        assert exceptions == [{"Fn::GetAtt": [r, "Arn"]} for r in sorted(readers)] + [BREAK_GLASS]
    signing = expanded["Resources"]["SigningKeySecretPolicy"]
    assert props(signing)["SecretId"] == {"Ref": "SigningKeySecret"}
    assert secret_read_exceptions(signing) == [
        {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}, {"Fn::GetAtt": ["RotationFunctionRole", "Arn"]}, BREAK_GLASS
    ]
    parameter = expanded["Parameters"]["BreakGlassPrincipalArn"]
    assert parameter["Default"] == ""
    pattern = parameter["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "arn:aws:iam::123456789012:role/ops/BreakGlass")
    assert not re.fullmatch(pattern, "*") and not re.fullmatch(pattern, "arn:aws:iam::123456789012:root")


def test_customer_managed_key_is_optional_and_used_only_through_secrets_manager(expanded):
    # Issue 12, item 4: off by default; when on, every keyrot secret uses it and keyrot's
    # roles may use it only via Secrets Manager in this region.
    assert expanded["Parameters"]["CustomerManagedSecretsKey"]["Default"] == "false"
    key = expanded["Resources"]["ManagedSecretsKey"]
    assert key["Condition"] == "UsesSecretsKey"
    assert props(key)["EnableKeyRotation"] is True
    uses = [s for s in props(key)["KeyPolicy"]["Statement"] if s["Sid"] == "KeyrotUsesThroughSecretsManager"]
    [use] = uses
    assert "kms:Decrypt" in use["Action"] and "kms:Encrypt" not in use["Action"]
    assert use["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"
    }
    assert use["Principal"]["AWS"][:2] == [
        {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}, {"Fn::GetAtt": ["RotationFunctionRole", "Arn"]}
    ]
    secrets = of_type(expanded, "AWS::SecretsManager::Secret")
    keyed = {k for k, s in secrets.items() if props(s).get("KmsKeyId") ==
             {"Fn::If": ["UsesSecretsKey", {"Ref": "ManagedSecretsKey"}, {"Ref": "AWS::NoValue"}]}}
    assert keyed == {k for k in secrets if k != "DefaultClientSecret"}
    assert len(keyed) == 4  # three managed users and the signing key


def test_user_list_parameters_refuse_spaces_empty_items_and_non_iam_characters(raw):
    # Issue 12, item 14. CloudFormation applies a CommaDelimitedList's AllowedPattern to
    # each item.
    for name in ["ManagedUsers", "DefaultClientUsers"]:
        parameter = raw["Parameters"][name]
        assert parameter["Type"] == "CommaDelimitedList"
        pattern = parameter["AllowedPattern"]
        for good in parameter["Default"].split(",") + ["ci-bot", "svc.backup", "a+b=c@d_e", "x" * 64]:
            assert re.fullmatch(pattern, good), (name, good)
        for bad in ["", " bob", "bob ", "a b", "x" * 65, 'a"b', "division/alice", "*"]:
            assert not re.fullmatch(pattern, bad), (name, bad)


def test_signing_key_rotation_waits_for_the_public_key_parameter(raw):
    # Issue 12, item 14: the first rotation's setSecret writes the parameter, so the
    # parameter must exist before the rotation can start.
    assert "SigningPublicKeysParameter" in depends_on(raw["Resources"]["SigningKeyRotation"])


def test_api_accepts_tls_1_2_and_later_only(translated):
    # Issue 12, item 14: the REST API itself (its default endpoint), not only a custom domain.
    [api] = of_type(translated, "AWS::ApiGateway::RestApi").values()
    assert props(api)["SecurityPolicy"] == "TLS_1_2"
