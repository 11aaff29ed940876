"""Benchmark baseline only: keyrot's API function (`POST /generate-token`,
`GET /active-key`) written the way the original Python system was (boto3 + PyJWT), with the
same inputs and cache lifetime as api-fn. Run under awslambdaric by the benchmark harness."""

import base64
import datetime
import json
import os
import re
import secrets
import time

import boto3
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SECRETS = boto3.client("secretsmanager")

ISSUER = os.environ["KEYROT_TOKEN_ISSUER"]
AUDIENCE = os.environ["KEYROT_TOKEN_AUDIENCE"]
TOKEN_TTL = int(os.environ.get("KEYROT_TOKEN_TTL_SECONDS", "120"))
SIGNING_SECRET = os.environ.get("KEYROT_SIGNING_KEY_SECRET_NAME", "keyrot/signing-key")
MANAGED_PREFIX = os.environ.get("KEYROT_MANAGED_SECRET_PREFIX", "keyrot/iam/")
INTERVAL_SECONDS = 60 * int(os.environ.get("KEYROT_ROTATION_INTERVAL_MINUTES", "10"))
SIGNING_KEY_TTL = 60
USER_NAME = re.compile(r"^[A-Za-z0-9+=,.@_-]{1,64}$")

_signing = {"expires": 0, "key": None}


def _reply(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json", "Cache-Control": "no-store"},
            "body": json.dumps(body)}


def _ed25519_from_pkcs8(der):
    # keyrot stores PKCS#8 v2 (RFC 5958, public key included), which cryptography's DER loader
    # refuses; the 32-byte seed follows the OCTET STRING header 04 22 04 20.
    start = der.index(b"\x04\x22\x04\x20") + 4
    return Ed25519PrivateKey.from_private_bytes(der[start:start + 32])


def _signing_key():
    if time.monotonic() >= _signing["expires"]:
        value = json.loads(SECRETS.get_secret_value(SecretId=SIGNING_SECRET, VersionStage="AWSCURRENT")["SecretString"])
        _signing["key"] = (value["Kid"], _ed25519_from_pkcs8(base64.b64decode(value["PrivateKey"])))
        _signing["expires"] = time.monotonic() + SIGNING_KEY_TTL
    return _signing["key"]


def _generate_token(client_id):
    kid, key = _signing_key()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": client_id, "iat": now, "nbf": now,
              "exp": now + TOKEN_TTL, "jti": secrets.token_hex(16)}
    token = jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})
    return _reply(200, {"token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL})


def _active_key(event, authorizer):
    values = (event.get("multiValueQueryStringParameters") or {}).get("username") or []
    if len(values) != 1 or not USER_NAME.match(values[0]):
        return _reply(400, {"error": "invalid_request", "message": "username must be given once, as an IAM user name"})
    user = values[0]
    if user not in authorizer.get("allowed_users", "").split(","):
        return _reply(403, {"error": "forbidden", "message": "this client may not read that user's key"})
    try:
        value = SECRETS.get_secret_value(SecretId=MANAGED_PREFIX + user, VersionStage="AWSCURRENT")
    except SECRETS.exceptions.ResourceNotFoundException:
        return _reply(404, {"error": "not_found", "message": "no managed key for this user yet"})
    secret = json.loads(value["SecretString"])
    if secret.get("UserName") != user or "AccessKeyId" not in secret:
        return _reply(404, {"error": "not_found", "message": "no managed key for this user yet"})
    rotated = value["CreatedDate"]
    return _reply(200, {"UserName": user, "AccessKeyId": secret["AccessKeyId"],
                        "SecretAccessKey": secret["SecretAccessKey"], "Version": value["VersionId"],
                        "RotatedAt": rotated.isoformat(),
                        "Expiration": (rotated + datetime.timedelta(seconds=INTERVAL_SECONDS)).isoformat()})


def handler(event, context):
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    client_id = authorizer.get("client_id")
    if not client_id:
        return _reply(403, {"error": "forbidden", "message": "not authorized"})
    route = (event.get("httpMethod"), event.get("resource"))
    if route == ("POST", "/generate-token"):
        return _generate_token(client_id)
    if route == ("GET", "/active-key"):
        return _active_key(event, authorizer)
    return _reply(404, {"error": "not_found", "message": "no such resource"})
