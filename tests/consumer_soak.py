"""A keyrot consumer as a client team would write one, for the soak test (local-stack/tests/e2e.rs).

It fetches a token and alice's key over HTTP, re-fetches the key only once RefreshAfter has
passed (reusing the token until shortly before it expires), and meanwhile calls STS
GetCallerIdentity with boto3 every 100 ms using the key it holds. moto answers an unknown or
deleted key with a default identity, so a call counts as failed unless the ARN is the user's.
It also counts a call made with a key past the Expiration it was given (the contract says the
client never needs to). Prints one JSON summary line on stdout.

Usage: KEYROT_API_KEY=... python consumer_soak.py API_URL AWS_ENDPOINT USER SECONDS
"""

import datetime
import json
import os
import sys
import time
import urllib.request

import boto3
import botocore.config


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def call_api(method, url, headers):
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main():
    api, endpoint, user, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    api_key = os.environ["KEYROT_API_KEY"]
    token, token_expires = None, 0.0
    key, refresh_after, expiration = None, 0.0, 0.0
    stats = {"calls": 0, "failed": 0, "past_expiration": 0, "fetches": 0, "keys": 0,
             "fetch_errors": 0, "failures": []}
    seen = set()
    sts, sts_key = None, None
    deadline = time.time() + seconds
    while time.time() < deadline:
        now = time.time()
        if key is None or now >= refresh_after:
            try:
                if token is None or now >= token_expires - 5:
                    issued = call_api("POST", f"{api}/generate-token", {"x-api-key": api_key})
                    token, token_expires = issued["token"], now + issued["expires_in"]
                key = call_api("GET", f"{api}/active-key?username={user}",
                               {"x-api-key": api_key, "Authorization": f"Bearer {token}"})
                stats["fetches"] += 1
                refresh_after = parse_time(key["RefreshAfter"])
                expiration = parse_time(key["Expiration"])
                seen.add(key["AccessKeyId"])
            except OSError as error:
                # Keep the key we hold: it is promised until its Expiration.
                stats["fetch_errors"] += 1
                stats["failures"].append(f"fetch: {error}")
                refresh_after = now + 1
        if time.time() > expiration:
            stats["past_expiration"] += 1
        if sts_key != key["AccessKeyId"]:
            sts = boto3.client(
                "sts", endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
                config=botocore.config.Config(retries={"max_attempts": 1}),
            )
            sts_key = key["AccessKeyId"]
        stats["calls"] += 1
        try:
            arn = sts.get_caller_identity()["Arn"]
            if not arn.endswith(f":user/{user}"):
                stats["failed"] += 1
                stats["failures"].append(f"{key['AccessKeyId']} authenticated as {arn}")
        except Exception as error:  # any refusal is a failed call
            stats["failed"] += 1
            stats["failures"].append(f"{key['AccessKeyId']}: {error}")
        time.sleep(0.1)
    stats["keys"] = len(seen)
    stats["failures"] = stats["failures"][:10]
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
