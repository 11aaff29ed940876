"""The Python side of the cache-hit benchmark (scripts/bench-credentials): what a minimal
credential_process helper written in Python costs on a cache hit. It does the same work as
keyrot-credentials on a hit: read the cache file, check the key is fresh, print the
process-credentials JSON. Usage: credential_helper.py CACHE_FILE"""

import json
import sys
import time
from datetime import datetime, timezone


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as cache:
        key = json.load(cache)["key"]
    now = int(time.time())
    if not (now < key["refresh_after"] and now < key["expiration"]):
        print("cache entry not fresh", file=sys.stderr)
        return 1
    expiration = datetime.fromtimestamp(key["expiration"], tz=timezone.utc)
    json.dump(
        {
            "Version": 1,
            "AccessKeyId": key["access_key_id"],
            "SecretAccessKey": key["secret_access_key"],
            "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
