"""A boto3 consumer of keyrot-credentials: one Session on a credential_process profile calling
STS GetCallerIdentity in a loop, while the local stack rotates on its schedule; once, mid-run, an
early rotation is started by hand (RotateSecret, as an operator would). Prints a JSON summary:
calls, failures (with the first errors), the ARNs seen and the access keys boto3 used."""

import argparse
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError


def rotate_early(operator, secret_id: str) -> None:
    """RotateSecret, as an operator would; refused while the schedule's rotation runs (as on
    AWS), so retried a bounded number of times."""
    for _ in range(20):
        try:
            operator.rotate_secret(SecretId=secret_id)
            return
        except ClientError as error:
            if error.response["Error"]["Code"] != "InvalidRequestException":
                raise
            time.sleep(0.5)
    raise RuntimeError("RotateSecret refused 20 times")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--early-rotation-at", type=float, required=True)
    parser.add_argument("--secret-id", required=True)
    args = parser.parse_args()

    session = boto3.Session(profile_name=args.profile)
    sts = session.client("sts", endpoint_url=args.endpoint_url, region_name="us-east-1")
    operator = boto3.client(
        "secretsmanager",
        endpoint_url=args.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    calls, failures, errors = 0, 0, []
    arns, keys = set(), []
    started = time.monotonic()
    rotated_early = False
    while time.monotonic() - started < args.seconds:
        if not rotated_early and time.monotonic() - started >= args.early_rotation_at:
            rotate_early(operator, args.secret_id)
            rotated_early = True
        calls += 1
        try:
            arns.add(sts.get_caller_identity()["Arn"])
            key = session.get_credentials().get_frozen_credentials().access_key
            if not keys or keys[-1] != key:
                keys.append(key)
        except Exception as error:  # every failure is counted and shown, none hidden
            failures += 1
            if len(errors) < 5:
                errors.append(f"{type(error).__name__}: {error}")
        time.sleep(0.25)
    json.dump(
        {
            "calls": calls,
            "failures": failures,
            "errors": errors,
            "arns": sorted(arns),
            "access_keys": keys,
            "rotated_early": rotated_early,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
