"""The key slots' cadence from a consumer's side, for scripts/bench-slots.

Against a running local stack (its ready file): fetches each user's key through the API about
ten times per interval for INTERVALS intervals (ticks only), then reports, from what it saw and
from the stack's own records:

* new keys per user per interval (distinct AccessKeyIds fetched, less the first);
* the shortest remaining lifetime handed out (Expiration - fetch time), in intervals;
* versions per slot secret written during the run (the count after less the count before:
  moto reports every version's CreatedDate as the time of the listing), scaled to 24 h at the
  default 10 minutes (the run's interval stands for 10 minutes);
* Lambda seconds per rotation: the four steps' durations (rotation-fn's RotationStepDuration
  metric lines in the stack's functions.log) summed, per finished rotation.

Prints one JSON object. Usage: python slots_bench.py READY_FILE STATE_DIR INTERVAL_SECONDS INTERVALS USER...
"""

import datetime
import json
import sys
import time
import urllib.request

import boto3


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def call(method, url, headers):
    request = urllib.request.Request(url, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def version_count(secrets, name):
    """Versions of the secret (boto3 has no paginator for this call)."""
    count, token = 0, None
    while True:
        page = secrets.list_secret_version_ids(
            SecretId=name, IncludeDeprecated=True, **({"NextToken": token} if token else {})
        )
        count += len(page["Versions"])
        token = page.get("NextToken")
        if not token:
            return count


def lambda_seconds(functions_log, since_ms):
    """Sum of step durations and count of finishSecret steps of IAM key rotations."""
    total_ms, finished = 0.0, 0
    with open(functions_log, errors="replace") as log:
        for line in log:
            if '"RotationStepDuration"' not in line:
                continue
            try:
                record = json.loads(line[line.index("{"):])
            except ValueError:
                continue
            if record.get("SecretKind") != "iam-access-key":
                continue
            if record.get("_aws", {}).get("Timestamp", 0) < since_ms:
                continue
            total_ms += record["RotationStepDuration"]
            if record.get("Step") == "finishSecret":
                finished += 1
    return total_ms / 1000.0, finished


def main():
    ready_file, state_dir = sys.argv[1], sys.argv[2]
    interval, intervals, users = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
    ready = json.load(open(ready_file))
    api, api_key = ready["api_url"], ready["api_key"]
    secrets = boto3.client(
        "secretsmanager", endpoint_url=ready["aws_endpoint"], region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test",
    )
    names = [n for user in users for n in (f"keyrot/iam/{user}", f"keyrot/iam/{user}/b")]
    before = {name: version_count(secrets, name) for name in names}
    started = time.time()
    token, token_expires = None, 0.0
    keys = {user: [] for user in users}
    shortest = None
    fetches = 0
    while time.time() < started + intervals * interval:
        now = time.time()
        if token is None or now >= token_expires - 5:
            issued = call("POST", f"{api}/generate-token", {"x-api-key": api_key})
            token, token_expires = issued["token"], now + issued["expires_in"]
        for user in users:
            fetched = time.time()
            key = call("GET", f"{api}/active-key?username={user}",
                       {"x-api-key": api_key, "Authorization": f"Bearer {token}"})
            fetches += 1
            left = parse_time(key["Expiration"]) - int(fetched)
            shortest = left if shortest is None else min(shortest, left)
            if not keys[user] or keys[user][-1] != key["AccessKeyId"]:
                keys[user].append(key["AccessKeyId"])
        time.sleep(max(0.0, interval / 10 - (time.time() - now)))
    elapsed = time.time() - started
    run_intervals = elapsed / interval
    new_keys = {user: len(set(ids)) - 1 for user, ids in keys.items()}
    scale = 86400.0 / (elapsed * 600.0 / interval)
    versions = {}
    for name in names:
        written = version_count(secrets, name) - before[name]
        versions[name] = {"written": written, "per_24h_at_10_min": round(written * scale, 1)}
    seconds, rotations = lambda_seconds(f"{state_dir}/functions.log", int(started * 1000))
    print(json.dumps({
        "interval_seconds": interval,
        "intervals": round(run_intervals, 2),
        "users": users,
        "fetches": fetches,
        "new_keys_per_user_per_interval": {u: round(n / run_intervals, 3) for u, n in new_keys.items()},
        "shortest_remaining_seconds": shortest,
        "shortest_remaining_intervals": round(shortest / interval, 3) if shortest else None,
        "versions": versions,
        "rotations_finished": rotations,
        "lambda_seconds_per_rotation": round(seconds / rotations, 3) if rotations else None,
    }))


if __name__ == "__main__":
    main()
