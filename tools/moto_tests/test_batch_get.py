"""tools/moto_server.py's BatchGetSecretValue with a SecretIdList: each secret's AWSCURRENT
value, every unreadable secret in Errors, at most 20 names."""

import pytest
from botocore.exceptions import ClientError

from conftest import unique_name, version_with


def test_reads_awscurrent_and_reports_each_unreadable_secret(sm):
    base = unique_name("batch")
    names = {label: f"{base}/{label}" for label in ("good", "moved", "empty", "deleting")}
    sm.create_secret(Name=names["good"], SecretString="v1")
    sm.create_secret(Name=names["moved"], SecretString="old")
    sm.create_secret(Name=names["empty"])
    sm.create_secret(Name=names["deleting"], SecretString="x")
    sm.delete_secret(SecretId=names["deleting"], RecoveryWindowInDays=7)
    # AWSCURRENT moved by UpdateSecretVersionStage: moto's default version stays behind.
    token = sm.put_secret_value(
        SecretId=names["moved"], SecretString="new", VersionStages=["AWSPENDING"]
    )["VersionId"]
    sm.update_secret_version_stage(
        SecretId=names["moved"], VersionStage="AWSCURRENT", MoveToVersionId=token,
        RemoveFromVersionId=version_with(sm, names["moved"], "AWSCURRENT")[0],
    )
    missing = f"{base}/missing"

    response = sm.batch_get_secret_value(SecretIdList=[*names.values(), missing])
    values = {v["Name"]: (v["SecretString"], v["VersionId"]) for v in response["SecretValues"]}
    assert values[names["moved"]] == ("new", token)
    assert {name: value for name, (value, _) in values.items()} == {
        names["good"]: "v1",
        names["moved"]: "new",
    }
    errors = {e["SecretId"]: e["ErrorCode"] for e in response["Errors"]}
    assert errors == {
        names["empty"]: "ResourceNotFoundException",
        names["deleting"]: "InvalidRequestException",
        missing: "ResourceNotFoundException",
    }
    assert not response.get("NextToken")


def test_more_than_20_names_are_refused(sm):
    base = unique_name("many")
    with pytest.raises(ClientError) as error:
        sm.batch_get_secret_value(SecretIdList=[f"{base}/{i}" for i in range(21)])
    assert error.value.response["Error"]["Code"] == "ValidationException"
