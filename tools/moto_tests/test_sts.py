"""tools/moto_server.py's STS: with KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS, GetCallerIdentity
refuses an access key younger than the delay with InvalidClientTokenId, as AWS does while a
new key propagates, and accepts it afterwards; without it, at once (moto's own behaviour)."""

import time
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import REGION, run_launcher, start_server

DELAY_SECONDS = 1.5


def client(service, url, key_id="testing", secret="testing"):
    return boto3.client(
        service, endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}),
    )


def new_key(url):
    iam = client("iam", url)
    user = f"sts-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return user, key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def delayed(tmp_path_factory):
    server = start_server(
        tmp_path_factory, "moto-sts", KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS=str(DELAY_SECONDS)
    )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def undelayed(tmp_path_factory):
    server = start_server(tmp_path_factory, "moto-sts-at-once")
    try:
        yield server.url
    finally:
        server.stop()


def test_a_new_key_is_refused_until_the_delay_has_passed(delayed):
    user, key_id, secret = new_key(delayed)
    sts = client("sts", delayed, key_id, secret)
    with pytest.raises(ClientError) as error:
        sts.get_caller_identity()
    assert error.value.response["Error"]["Code"] == "InvalidClientTokenId"
    time.sleep(DELAY_SECONDS + 0.2)
    assert sts.get_caller_identity()["Arn"].endswith(f":user/{user}")


def test_without_a_delay_a_new_key_is_accepted_at_once(undelayed):
    user, key_id, secret = new_key(undelayed)
    assert client("sts", undelayed, key_id, secret).get_caller_identity()["Arn"].endswith(
        f":user/{user}"
    )


@pytest.mark.parametrize("value", ["later", "-1", "nan"])
def test_a_bad_delay_stops_the_launcher_with_a_message_naming_it(value):
    result = run_launcher(KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS=value)
    assert result.returncode != 0
    assert "KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
