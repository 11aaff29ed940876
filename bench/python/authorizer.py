"""Benchmark baseline only: keyrot's REQUEST authorizer written the way the original Python
system was (boto3 + PyJWT), with the same checks, inputs and cache lifetime as authorizer-fn.
Run under awslambdaric by the benchmark harness; not deployed."""

import hmac
import ipaddress
import json
import os
import time

import boto3
import jwt

SSM = boto3.client("ssm")
SECRETS = boto3.client("secretsmanager")

ALLOWED = [ipaddress.ip_network(c.strip()) for c in os.environ["KEYROT_ALLOWED_CIDRS"].split(",") if c.strip()]
CLIENTS_PATH = os.environ.get("KEYROT_CLIENTS_PARAMETER_PATH", "/keyrot/clients/")
CLIENT_PREFIX = os.environ.get("KEYROT_CLIENT_SECRET_PREFIX", "keyrot/clients/")
PUBLIC_KEYS = os.environ.get("KEYROT_PUBLIC_KEYS_PARAMETER", "/keyrot/signing-public-keys")
ISSUER = os.environ["KEYROT_TOKEN_ISSUER"]
AUDIENCE = os.environ["KEYROT_TOKEN_AUDIENCE"]
TTL = int(os.environ.get("KEYROT_REGISTRY_TTL_SECONDS", "30"))

_cache = {}


def _cached(name, load):
    expires, value = _cache.get(name, (0, None))
    if time.monotonic() >= expires:
        value = load()
        _cache[name] = (time.monotonic() + TTL, value)
    return value


def _load_clients():
    clients = []
    for page in SSM.get_paginator("get_parameters_by_path").paginate(Path=CLIENTS_PATH, Recursive=False):
        for parameter in page["Parameters"]:
            client_id = parameter["Name"][len(CLIENTS_PATH):]
            settings = json.loads(parameter["Value"])
            secret = SECRETS.get_secret_value(SecretId=CLIENT_PREFIX + client_id, VersionStage="AWSCURRENT")
            clients.append({
                "id": client_id,
                "api_key": json.loads(secret["SecretString"])["ApiKey"],
                "users": settings["users"],
                "cidrs": [ipaddress.ip_network(c) for c in settings.get("cidrs", [])],
                "usage_key": settings.get("usage_key"),
            })
    return clients


def _load_keys():
    jwks = json.loads(SSM.get_parameter(Name=PUBLIC_KEYS)["Parameter"]["Value"])
    return {key["kid"]: jwt.PyJWK(key, algorithm="EdDSA") for key in jwks["keys"]}


def _policy(effect, principal, method_arn, context=None, usage_key=None):
    response = {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}]},
    }
    if context:
        response["context"] = context
    if usage_key:
        response["usageIdentifierKey"] = usage_key
    return response


def handler(event, context):
    clients = _cached("clients", _load_clients)
    keys = _cached("keys", _load_keys)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    api_key = headers.get("x-api-key") or ""
    client = None
    for candidate in clients:  # compare with every key: no early exit on a match
        if hmac.compare_digest(candidate["api_key"].encode(), api_key.encode()):
            client = candidate
    if client is None:
        raise Exception("Unauthorized")
    route = (event.get("httpMethod"), event.get("resource"))
    method_arn = event.get("methodArn", "")
    token_id = ""
    if route == ("GET", "/active-key"):
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Exception("Unauthorized")
        try:
            key = keys[jwt.get_unverified_header(token)["kid"]]
            claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE, issuer=ISSUER,
                                options={"require": ["exp", "iat", "nbf", "sub", "jti"]})
        except (jwt.PyJWTError, KeyError):
            raise Exception("Unauthorized")
        if claims["sub"] != client["id"]:
            raise Exception("Unauthorized")
        token_id = claims["jti"]
    elif route != ("POST", "/generate-token"):
        return _policy("Deny", client["id"], method_arn)
    source = ipaddress.ip_address(event["requestContext"]["identity"]["sourceIp"])
    if not any(source in net for net in ALLOWED) or (client["cidrs"] and not any(source in net for net in client["cidrs"])):
        return _policy("Deny", client["id"], method_arn)
    return _policy("Allow", client["id"], method_arn,
                   {"client_id": client["id"], "allowed_users": ",".join(client["users"]), "token_id": token_id},
                   client["usage_key"])
