"""keyrot consumers as client teams run them, for the soak test (local-stack/tests/e2e.rs).

Both consumers get their key from one `credential_process` line that runs keyrot-credentials,
as docs/consumers.md tells them to:

* boto3 calls STS GetCallerIdentity every 100 ms with a session on that profile (botocore
  decides when to run the helper again; the helper decides when to fetch from the API);
* the real AWS CLI runs `aws sts get-caller-identity` on the same profile every 3 s, in a
  thread of its own.

moto answers an unknown or deleted key with a default identity, so a call counts as failed
unless the ARN is the user's. A boto3 call made with a key past the `Expiration` the helper
handed over is counted too (the contract says the client never needs that). Prints one JSON
summary line on stdout.

Usage: KEYROT_API_KEY=... python consumer_soak.py API_URL AWS_ENDPOINT USER SECONDS HELPER
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import boto3
import botocore.config

AWS_CLI_EVERY_SECONDS = 3.0


def write_profile(workdir, api, user, helper):
    """The consumer's AWS config: one profile whose credentials come from the helper."""
    key_file = os.path.join(workdir, "api-key")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(os.environ["KEYROT_API_KEY"])
    cache_dir = os.path.join(workdir, "cache")
    os.mkdir(cache_dir, 0o700)
    config = os.path.join(workdir, "aws-config")
    with open(config, "w") as handle:
        handle.write(
            "[profile soak]\n"
            f"credential_process = {helper} --api {api} --user {user}"
            f" --api-key-file {key_file} --cache-dir {cache_dir}\n"
            "region = us-east-1\n"
        )
    return config


def aws_cli_loop(endpoint, user, deadline, env, stats, lock):
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    while time.time() < deadline:
        started = time.time()
        result = subprocess.run(
            [aws, "sts", "get-caller-identity", "--profile", "soak", "--endpoint-url", endpoint,
             "--output", "json"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        with lock:
            stats["cli_calls"] += 1
            arn = ""
            if result.returncode == 0:
                arn = json.loads(result.stdout).get("Arn", "")
            if not arn.endswith(f":user/{user}"):
                stats["cli_failed"] += 1
                stats["failures"].append(f"aws cli: {result.returncode} {arn} {result.stderr[-300:]}")
        time.sleep(max(0.0, AWS_CLI_EVERY_SECONDS - (time.time() - started)))


def main():
    api, endpoint, user, seconds, helper = sys.argv[1:6]
    seconds = float(seconds)
    workdir = tempfile.mkdtemp(prefix="keyrot-soak-")
    config = write_profile(workdir, api, user, helper)
    # The consumers see nothing of the test's own AWS settings: only their profile.
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": workdir,
        "AWS_CONFIG_FILE": config,
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(workdir, "no-credentials"),
    }
    for name in [n for n in os.environ if n.startswith("AWS_") or n.startswith("KEYROT_")]:
        del os.environ[name]
    os.environ.update(env)

    stats = {"calls": 0, "failed": 0, "past_expiration": 0, "keys": 0, "cli_calls": 0,
             "cli_failed": 0, "failures": []}
    lock = threading.Lock()
    deadline = time.time() + seconds
    cli = threading.Thread(target=aws_cli_loop,
                           args=(endpoint, user, deadline, env, stats, lock))
    cli.start()

    session = boto3.Session(profile_name="soak")
    sts = session.client("sts", endpoint_url=endpoint,
                         config=botocore.config.Config(retries={"max_attempts": 1}))
    credentials = session.get_credentials()
    seen = set()
    while time.time() < deadline:
        try:
            # What the next call signs with: botocore refreshes through the helper first when
            # the key is close to its Expiration, as it does inside the call.
            key = credentials.get_frozen_credentials().access_key
            expiry = credentials._expiry_time  # botocore's copy of the helper's Expiration
            seen.add(key)
            if expiry is not None and time.time() > expiry.timestamp():
                with lock:
                    stats["past_expiration"] += 1
            arn = sts.get_caller_identity()["Arn"]
            failure = None if arn.endswith(f":user/{user}") else f"{key} authenticated as {arn}"
        except Exception as error:  # any refusal, or a helper that gave nothing, is a failure
            failure = f"boto3: {error}"
        with lock:
            stats["calls"] += 1
            if failure:
                stats["failed"] += 1
                stats["failures"].append(failure)
        time.sleep(0.1)
    cli.join()
    stats["keys"] = len(seen)
    stats["failures"] = stats["failures"][:10]
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
