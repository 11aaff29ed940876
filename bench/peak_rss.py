"""Peak resident memory (VmHWM) of the three release function binaries under a workload on the
local stack: API calls through the local gateway and rotations through RotateSecret.

Run through scripts/bench-memory, which builds the release binaries and starts the stack.
Prints one JSON object: per function, peak RSS in MiB, plus the workload's counts.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import boto3

FUNCTIONS = ["rotation-fn", "authorizer-fn", "api-fn"]


def call(method, url, headers):
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def peak_rss_mib(bin_dir):
    peaks = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                exe = f.read().split(b"\0")[0].decode()
            with open(f"/proc/{pid}/status") as f:
                status = f.read()
        except OSError:
            continue
        for function in FUNCTIONS:
            if exe == os.path.join(bin_dir, function):
                kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
                peaks[function] = round(kib / 1024, 1)
    return peaks


def main():
    root, bin_dir, requests, rotations = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    state = os.path.join(root, "target", "keyrot", "bench-memory")
    os.makedirs(state, exist_ok=True)
    ready_file = os.path.join(state, "ready.json")
    if os.path.exists(ready_file):
        os.remove(ready_file)
    stack = subprocess.Popen(
        [os.path.join(root, "target", "debug", "keyrot-local"), "--root", root, "--bin-dir", bin_dir,
         "--aws-port", "0", "--lambda-port", "0", "--api-port", "0", "--state-dir", state,
         "--ready-file", ready_file, "--interval-seconds", "86400",
         "--throttle-rate", "100000", "--throttle-burst", "100000"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while not os.path.exists(ready_file) or os.path.getsize(ready_file) == 0:
            if stack.poll() is not None or time.time() > deadline:
                raise SystemExit("local stack did not start")
            time.sleep(0.2)
        ready = json.load(open(ready_file))
        api, key = ready["api_url"], ready["api_key"]
        secrets = boto3.client("secretsmanager", endpoint_url=ready["aws_endpoint"], region_name="us-east-1",
                               aws_access_key_id="test", aws_secret_access_key="test")
        statuses = {}
        for i in range(requests):
            status, body = call("POST", f"{api}/generate-token", {"x-api-key": key})
            statuses[status] = statuses.get(status, 0) + 1
            token = body["token"]
            status, _ = call("GET", f"{api}/active-key?username=alice", {"x-api-key": key, "Authorization": f"Bearer {token}"})
            statuses[status] = statuses.get(status, 0) + 1
            if i % max(1, requests // rotations) == 0:
                secrets.rotate_secret(SecretId="keyrot/iam/alice")
        secrets.rotate_secret(SecretId="keyrot/signing-key")
        print(json.dumps({"peak_rss_mib": peak_rss_mib(bin_dir), "api_statuses": statuses,
                          "api_requests": 2 * requests, "rotations": rotations + 1}))
    finally:
        stack.send_signal(signal.SIGINT)
        stack.wait(timeout=30)


if __name__ == "__main__":
    main()
