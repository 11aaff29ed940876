"""tools/moto_server.py's RotateSecret: the rotation function invoked through a Lambda Invoke
API (KEYROT_ROTATION_INVOKE_URL) or, without one, only the pending version staged; the
configured function kept when a call names none; refused while a rotation is in progress and
accepted when AWSPENDING sits on AWSCURRENT; a failed rotation reattempted with its token; RotateImmediately=false running only testSecret
and leaving no AWSPENDING; LastRotatedDate set when a rotation completes, not when it starts."""

import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    ROTATION_FUNCTION, ROTATION_LAMBDA_ARN, run_launcher, stages, unique_name, version_with,
)

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
RULES = {"AutomaticallyAfterDays": 1}


def current_value(sm, name):
    return sm.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]


def error_of(call, **arguments):
    with pytest.raises(ClientError) as error:
        call(**arguments)
    return error.value.response["Error"]


# With an Invoke API (the local stack's `cargo lambda watch`).


def test_each_step_goes_to_the_invoke_api_with_one_token(rotation_stack):
    sm, function = rotation_stack
    name = unique_name("invoked")
    sm.create_secret(Name=name, SecretString="first")
    token = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES
    )["VersionId"]

    calls = [(fn, event) for fn, event in function.calls if event["SecretId"] == name]
    assert [event["Step"] for _, event in calls] == STEPS
    assert {fn for fn, _ in calls} == {ROTATION_FUNCTION}, "the function name, not its ARN"
    assert {event["ClientRequestToken"] for _, event in calls} == {token}
    assert current_value(sm, name) == f"value-{token}"


def test_a_failed_step_fails_rotate_secret_with_its_error(rotation_stack):
    sm, function = rotation_stack
    name = unique_name("fails-at-setSecret")
    sm.create_secret(Name=name, SecretString="first")
    error = error_of(
        sm.rotate_secret, SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN,
        RotationRules=RULES,
    )
    assert error["Code"] == "InvalidRequestException"
    assert "failed at setSecret: RotationError: setSecret refused" in error["Message"]
    assert function.steps_for(name) == ["createSecret", "setSecret"]
    assert current_value(sm, name) == "first"


def test_a_failed_rotation_is_reattempted_with_its_token_and_completes(retrying_rotation_stack):
    sm, function = retrying_rotation_stack
    name = unique_name("fails-once-at-testSecret")
    sm.create_secret(Name=name, SecretString="first")
    error = error_of(
        sm.rotate_secret, SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN,
        RotationRules=RULES,
    )
    assert "failed at testSecret" in error["Message"]
    # Until the reattempt, the rotation is in progress (AWS refuses another one).
    assert "will be reattempted" in error_of(sm.rotate_secret, SecretId=name)["Message"]
    deadline = time.time() + 10
    while time.time() < deadline and function.steps_for(name)[-1:] != ["finishSecret"]:
        time.sleep(0.1)
    assert function.steps_for(name) == ["createSecret", "setSecret", "testSecret"] + STEPS
    tokens = {event["ClientRequestToken"] for _, event in function.calls
              if event["SecretId"] == name}
    assert len(tokens) == 1, "the same rotation, not a new one"
    assert current_value(sm, name) == f"value-{tokens.pop()}"
    assert sm.rotate_secret(SecretId=name)["VersionId"], "no rotation left in progress"


def test_a_rotation_failing_every_time_is_reattempted_at_most_five_times(
        retrying_rotation_stack):
    sm, function = retrying_rotation_stack
    name = unique_name("fails-at-createSecret")
    sm.create_secret(Name=name, SecretString="first")
    error_of(sm.rotate_secret, SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN,
             RotationRules=RULES)
    time.sleep(4)
    assert function.steps_for(name) == ["createSecret"] * 5
    assert current_value(sm, name) == "first"


def test_rotate_secret_naming_no_function_uses_the_configured_one(rotation_stack):
    sm, function = rotation_stack
    name = unique_name("schedule")
    sm.create_secret(Name=name, SecretString="first")
    sm.rotate_secret(SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES)

    # As a schedule's {"SecretId": ...} does. AWSPENDING is still on AWSCURRENT's version
    # from the first rotation, which AWS accepts.
    token = sm.rotate_secret(SecretId=name)["VersionId"]
    assert function.steps_for(name) == STEPS + STEPS
    assert current_value(sm, name) == f"value-{token}", "not an empty version made current"
    assert sm.describe_secret(SecretId=name)["RotationLambdaARN"] == ROTATION_LAMBDA_ARN


def test_rotate_immediately_false_runs_only_test_secret_and_leaves_no_pending(rotation_stack):
    sm, function = rotation_stack
    name = unique_name("test-only")
    sm.create_secret(Name=name, SecretString="first")
    sm.rotate_secret(SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES)
    current = version_with(sm, name, "AWSCURRENT")
    value = current_value(sm, name)

    sm.rotate_secret(SecretId=name, RotateImmediately=False)
    assert function.steps_for(name) == STEPS + ["testSecret"]
    assert version_with(sm, name, "AWSPENDING") == []
    assert version_with(sm, name, "AWSCURRENT") == current
    assert current_value(sm, name) == value


# Without an Invoke API (keyrot's integration tests drive the steps themselves).


def rotate_by_hand(sm, name):
    """One rotation as the caller runs it: RotateSecret, then createSecret's put and
    finishSecret's move of AWSCURRENT (AWSPENDING left on it). The new VersionId."""
    token = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES
    )["VersionId"]
    sm.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString=f"value-{token}",
        VersionStages=["AWSPENDING"],
    )
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token,
        RemoveFromVersionId=version_with(sm, name, "AWSCURRENT")[0],
    )
    return token


def test_without_an_invoke_api_rotate_secret_only_stages_the_pending_version(sm):
    name = unique_name("staged")
    first = sm.create_secret(Name=name, SecretString="first")["VersionId"]
    token = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES
    )["VersionId"]

    assert stages(sm, name) == {first: ["AWSCURRENT"], token: ["AWSPENDING"]}
    error = error_of(sm.get_secret_value, SecretId=name, VersionStage="AWSPENDING")
    assert error["Code"] == "ResourceNotFoundException", "the pending version has no value"
    assert current_value(sm, name) == "first"
    assert sm.describe_secret(SecretId=name)["RotationEnabled"] is True


def test_without_an_invoke_api_rotate_secret_naming_no_function_keeps_current(sm):
    name = unique_name("unnamed")
    sm.create_secret(Name=name, SecretString="first")
    done = rotate_by_hand(sm, name)

    token = sm.rotate_secret(SecretId=name)["VersionId"]
    assert version_with(sm, name, "AWSCURRENT") == [done]
    assert version_with(sm, name, "AWSPENDING") == [token]
    assert current_value(sm, name) == f"value-{done}"
    assert sm.describe_secret(SecretId=name)["RotationLambdaARN"] == ROTATION_LAMBDA_ARN


def test_rotate_secret_is_refused_while_pending_is_without_current(sm):
    name = unique_name("in-progress")
    sm.create_secret(Name=name, SecretString="first")
    pending = sm.rotate_secret(
        SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN, RotationRules=RULES
    )["VersionId"]

    error = error_of(sm.rotate_secret, SecretId=name)
    assert error["Code"] == "InvalidRequestException"
    assert "A previous rotation isn't complete" in error["Message"]
    assert version_with(sm, name, "AWSPENDING") == [pending], "not replaced"


def test_rotate_secret_is_accepted_when_pending_sits_on_current(sm):
    name = unique_name("finished")
    sm.create_secret(Name=name, SecretString="first")
    done = rotate_by_hand(sm, name)
    assert sorted(stages(sm, name)[done]) == ["AWSCURRENT", "AWSPENDING"]

    token = sm.rotate_secret(SecretId=name)["VersionId"]
    assert stages(sm, name)[done] == ["AWSCURRENT"]
    assert version_with(sm, name, "AWSPENDING") == [token]


def test_last_rotated_date_is_the_completion_not_the_start(sm):
    import time

    name = unique_name("last-rotated")
    sm.create_secret(Name=name, SecretString="first")
    assert "LastRotatedDate" not in sm.describe_secret(SecretId=name)
    token = sm.rotate_secret(SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN)["VersionId"]
    # Started, not completed: AWS reports no rotation yet (moto reported this call's time).
    assert "LastRotatedDate" not in sm.describe_secret(SecretId=name)
    sm.put_secret_value(
        SecretId=name, ClientRequestToken=token, SecretString="second",
        VersionStages=["AWSPENDING"],
    )
    time.sleep(0.3)
    before = time.time()
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=token,
        RemoveFromVersionId=version_with(sm, name, "AWSCURRENT")[0],
    )
    completed = sm.describe_secret(SecretId=name)["LastRotatedDate"].timestamp()
    assert before <= completed <= time.time(), "the completion, to the sub-second"

    # The next rotation's start leaves it there.
    sm.rotate_secret(SecretId=name, RotationLambdaARN=ROTATION_LAMBDA_ARN)
    assert sm.describe_secret(SecretId=name)["LastRotatedDate"].timestamp() == completed
    # Moving another label, or AWSCURRENT onto a version without AWSPENDING, completes nothing.
    first = [v["VersionId"] for v in sm.list_secret_version_ids(SecretId=name)["Versions"]
             if "AWSPREVIOUS" in v.get("VersionStages", [])][0]
    sm.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=first,
        RemoveFromVersionId=token,
    )
    assert sm.describe_secret(SecretId=name)["LastRotatedDate"].timestamp() == completed


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_retry_delay_stops_the_launcher_with_a_message_naming_it(value):
    result = run_launcher(KEYROT_MOTO_ROTATION_RETRY_SECONDS=value)
    assert result.returncode != 0
    assert "KEYROT_MOTO_ROTATION_RETRY_SECONDS" in result.stderr
    assert repr(value) in result.stderr
    assert "Traceback" not in result.stderr
