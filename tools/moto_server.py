"""moto server as keyrot's offline AWS.

moto's RotateSecret runs the rotation function through moto's Lambda backend, which needs
Docker. This launcher swaps that backend for rotation calls only:

* with KEYROT_ROTATION_INVOKE_URL set (a Lambda Invoke API such as `cargo lambda watch`), each
  step is POSTed to `<url>/2015-03-31/functions/<function name>/invocations`, so RotateSecret
  runs the real rotation function, as on AWS; a failed step fails RotateSecret with its error;
* without it, RotateSecret only stages the new version (AWSPENDING, no value) and enables
  rotation, and the caller drives the four steps itself, as keyrot's integration tests do.

It also makes moto behave like AWS where keyrot depends on it (moto 5.2.5 differs):

* a RotateSecret that names no rotation function (as a schedule's `{"SecretId": ...}` does)
  uses the configured one; moto forgets it and marks the empty new version AWSCURRENT;
* RotateSecret is refused while a rotation is in progress, i.e. while a version carries
  AWSPENDING without AWSCURRENT ("A previous rotation isn't complete. That rotation will be
  reattempted."); moto's check is inverted: it refuses when AWSPENDING sits on the AWSCURRENT
  version, which AWS accepts, and silently replaces a pending version, which AWS refuses;
* RotateSecret with RotateImmediately=false and an Invoke API runs only testSecret and then
  removes the test's AWSPENDING label, as AWS does; moto leaves it on the new version;
* with KEYROT_MOTO_MAX_VERSIONS=N, PutSecretValue is refused with LimitExceededException once
  a secret holds N versions that Secrets Manager may not remove yet (labelled, or younger than
  the retention window), as AWS's retention rule and reported version quota do; and once a
  secret holds more than N versions, its unlabelled versions older than the window are
  forgotten, oldest first, as AWS removes unlabelled versions beyond 100 that are older than
  24 hours, so that ListSecretVersionIds shows what the limit counts. moto never refuses and
  keeps every version. The window is KEYROT_MOTO_VERSION_RETENTION_SECONDS: default 86400
  (AWS's 24 hours), any positive number of seconds; a run with compressed time scales it
  (a 20-second interval standing for AWS's 10 minutes: 86400 / 30 = 2880). Version ages are
  measured to the sub-second (moto stamps whole seconds), which short windows need;
* DescribeSecret's LastRotatedDate is when a rotation last *completed* (AWS), exact to the
  sub-second: UpdateSecretVersionStage moving AWSCURRENT onto the version that holds AWSPENDING
  (finishSecret) sets it; RotateSecret itself leaves it as it was. moto sets it, in whole
  seconds, when RotateSecret is called, so a rotation still under way looked finished;
* a rotation whose step failed is reattempted, as AWS's refusal of the next RotateSecret says
  ("That rotation will be reattempted"): with KEYROT_MOTO_ROTATION_RETRY_SECONDS=S (and an
  Invoke API), S seconds after a failed step all four steps run again with the same token,
  on the pending version as the failed attempt left it, up to 5 attempts in all. AWS
  documents neither the delay nor the count; the local stack sets S to half its interval.
  moto never reattempts: a slot whose tick failed stayed "in progress" for good;
* with KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS=S, STS GetCallerIdentity refuses an IAM access
  key younger than S seconds with InvalidClientTokenId, as AWS does while a new key propagates
  ("typically ~5–15 s"); moto accepts a key the moment it exists. Default 0: at once;
* ListSecretVersionIds reports each version's CreatedDate (exact, from the stamps above);
  moto reports the time of the listing for every version, so a count of versions younger
  than 24 hours counted them all;
* BatchGetSecretValue with a SecretIdList reads each secret's AWSCURRENT version and reports
  every secret it cannot read in `Errors` (ResourceNotFoundException for a missing secret or
  one without a value, InvalidRequestException for one scheduled for deletion, ...), answering
  the call itself; it refuses more than 20 names (ValidationException), as the API reference's
  limit says. moto reads each secret's default version, which UpdateSecretVersionStage does
  not always move, fails the whole call on a secret without a value, and takes any number.
  (The Filters form is moto's own; keyrot does not use it.)

Usage: python moto_server.py -H 127.0.0.1 -p PORT   (the same flags as moto_server)
An invalid KEYROT_MOTO_MAX_VERSIONS or KEYROT_MOTO_VERSION_RETENTION_SECONDS stops it at start
with a message naming the variable (exit status 2). Tests: tools/moto_tests.
"""

import datetime
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.request

import moto.awslambda.utils as lambda_utils
from moto.secretsmanager.exceptions import (
    InvalidRequestException,
    SecretsManagerClientError,
    ValidationException,
)
from moto.core.exceptions import InvalidClientTokenIdError
from moto.iam.models import iam_backends
from moto.secretsmanager.models import SecretsManagerBackend
from moto.sts.models import STSBackend
from moto.server import main

# Longest a step may take: Lambda's maximum timeout.
STEP_TIMEOUT_SECONDS = 900


class RotationFunctionInvoker:
    """Stands in for moto's Lambda backend when Secrets Manager invokes a rotation function."""

    def __init__(self, invoke_url):
        self.invoke_url = invoke_url.rstrip("/") if invoke_url else None

    def get_function(self, function_name_or_arn, qualifier=None):
        return function_name_or_arn

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        if not self.invoke_url:
            return None
        name = function_name.split(":function:")[-1].split(":")[0]
        request = urllib.request.Request(
            f"{self.invoke_url}/2015-03-31/functions/{name}/invocations",
            data=body.encode() if isinstance(body, str) else body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        step = json.loads(body).get("Step", "?")
        try:
            with urllib.request.urlopen(request, timeout=STEP_TIMEOUT_SECONDS) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            raise RotationStepFailed(
                f"rotation function {name} failed at {step}: {_describe(error.read())}"
            ) from None
        except OSError as error:
            raise RotationStepFailed(
                f"rotation function {name} could not be invoked at {step}: {error}"
            ) from None


class RotationStepFailed(InvalidRequestException):
    """A step of the rotation function failed (RotateSecret answers it as InvalidRequest)."""


def _describe(payload):
    try:
        error = json.loads(payload)
        return f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")[:500]


def _env_number(name, default, parse, valid, expected):
    """The number in environment variable NAME (DEFAULT when unset or empty); exits naming
    NAME when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    if value is None or not valid(value):
        print(f"moto_server.py: {name} must be {expected}, not {raw!r}", file=sys.stderr)
        sys.exit(2)
    return value


# Versions younger than this are never removed by Secrets Manager (AWS: 24 hours).
VERSION_RETENTION_SECONDS = _env_number(
    "KEYROT_MOTO_VERSION_RETENTION_SECONDS", 24 * 3600, float,
    lambda seconds: math.isfinite(seconds) and seconds > 0,
    "a positive number of seconds (fractions allowed), such as 86400 or 2.5",
)
# 0: a failed rotation is never reattempted (moto's own behaviour).
ROTATION_RETRY_SECONDS = _env_number(
    "KEYROT_MOTO_ROTATION_RETRY_SECONDS", 0.0, float,
    lambda seconds: math.isfinite(seconds) and seconds >= 0,
    "a number of seconds (fractions allowed; 0 or empty: no reattempt)",
)
ROTATION_ATTEMPTS = 5
# 0: STS accepts a new key at once (moto's own behaviour).
STS_ACCEPTANCE_DELAY_SECONDS = _env_number(
    "KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS", 0.0, float,
    lambda seconds: math.isfinite(seconds) and seconds >= 0,
    "a number of seconds (fractions allowed; 0 or empty: at once)",
)
# 0: no limit, and no version is ever forgotten (moto's own behaviour).
_max_versions = _env_number(
    "KEYROT_MOTO_MAX_VERSIONS", 0, int, lambda count: count >= 0,
    "a whole number of versions (0 or empty: no limit)",
)


class LimitExceededException(SecretsManagerClientError):
    def __init__(self, message):
        super().__init__("LimitExceededException", message)


def _refuse_if_rotation_in_progress(secret):
    """AWS: RotateSecret fails while AWSPENDING is on a version without AWSCURRENT."""
    for version in secret.versions.values():
        stages = version["version_stages"]
        if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
            raise InvalidRequestException(
                "A previous rotation isn't complete. That rotation will be reattempted."
            )
    # AWSPENDING left on the AWSCURRENT version ends a rotation cleanly on AWS; take it off so
    # that moto's inverted check does not refuse what AWS accepts.
    for version in secret.versions.values():
        if "AWSCURRENT" in version["version_stages"]:
            version["version_stages"] = [
                stage for stage in version["version_stages"] if stage != "AWSPENDING"
            ]


_moto_rotate_secret = SecretsManagerBackend.rotate_secret


def _rotate_with_configured_function(self, secret_id, client_request_token=None,
                                     rotation_lambda_arn=None, rotation_rules=None,
                                     rotate_immediately=True):
    secret = None
    if self._is_valid_identifier(secret_id):
        secret = self.secrets[secret_id]
        _refuse_if_rotation_in_progress(secret)
        if not rotation_lambda_arn:
            rotation_lambda_arn = secret.rotation_lambda_arn or None
    try:
        result = _moto_rotate_secret(
            self,
            secret_id=secret_id,
            client_request_token=client_request_token,
            rotation_lambda_arn=rotation_lambda_arn,
            rotation_rules=rotation_rules,
            rotate_immediately=rotate_immediately,
        )
    except RotationStepFailed:
        if secret is not None and rotate_immediately:
            _reattempt_later(self, secret, attempt=2)
        raise
    finally:
        if secret is not None:
            _stamp_new_versions(secret)  # the pending version (the version limit's clock)
            # The last completion (finishSecret, through an Invoke API within this call, or
            # none), not this call's start.
            secret.last_rotation_date = getattr(secret, "keyrot_completed_at", None)
    if not rotate_immediately and _invoker.invoke_url:
        # AWS: with RotateImmediately=false the test's AWSPENDING version is removed after
        # testSecret ran (without an Invoke API the caller runs testSecret itself, later).
        _drop_pending_labels(self.secrets[secret_id])
    return result


def _pending_token(secret):
    for version_id, version in secret.versions.items():
        stages = version["version_stages"]
        if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
            return version_id
    return None


def _reattempt_later(backend, secret, attempt):
    """Runs the pending rotation's four steps again after ROTATION_RETRY_SECONDS, with its own
    token, unless it has ended (or the secret gone) by then."""
    token = _pending_token(secret)
    if not ROTATION_RETRY_SECONDS or token is None or attempt > ROTATION_ATTEMPTS:
        return
    timer = threading.Timer(
        ROTATION_RETRY_SECONDS, _reattempt, args=(backend, secret, token, attempt)
    )
    timer.daemon = True
    timer.start()


def _reattempt(backend, secret, token, attempt):
    if secret.is_deleted() or _pending_token(secret) != token or not secret.rotation_lambda_arn:
        return
    print(f"moto_server.py: reattempting the rotation of {secret.name} ({token}), "
          f"attempt {attempt}", file=sys.stderr, flush=True)
    try:
        for step in ["createSecret", "setSecret", "testSecret", "finishSecret"]:
            _invoker.invoke(
                secret.rotation_lambda_arn, None,
                json.dumps({"Step": step, "SecretId": secret.name, "ClientRequestToken": token}),
                {}, {},
            )
    except RotationStepFailed as error:
        print(f"moto_server.py: {error}", file=sys.stderr, flush=True)
        _reattempt_later(backend, secret, attempt + 1)
        return
    if "AWSCURRENT" in secret.versions.get(token, {}).get("version_stages", []):
        secret.set_default_version_id(token)


def _drop_pending_labels(secret):
    for version in secret.versions.values():
        if "AWSPENDING" in version["version_stages"]:
            version["version_stages"].remove("AWSPENDING")


SecretsManagerBackend.rotate_secret = _rotate_with_configured_function

_moto_update_secret_version_stage = SecretsManagerBackend.update_secret_version_stage


def _update_stage_recording_completion(self, secret_id, version_stage, remove_from_version_id,
                                       move_to_version_id):
    """AWS: a rotation completes when AWSCURRENT moves onto its AWSPENDING version."""
    secret = self.secrets[secret_id] if self._is_valid_identifier(secret_id) else None
    completing = (
        secret is not None
        and version_stage == "AWSCURRENT"
        and "AWSPENDING" in secret.versions.get(move_to_version_id, {}).get("version_stages", [])
    )
    result = _moto_update_secret_version_stage(
        self, secret_id, version_stage, remove_from_version_id, move_to_version_id
    )
    if completing:
        secret.keyrot_completed_at = time.time()
        secret.last_rotation_date = secret.keyrot_completed_at
    return result


SecretsManagerBackend.update_secret_version_stage = _update_stage_recording_completion

# The version limit and retention (module docstring). moto stamps a version's "createdate" in
# whole seconds, too coarse for a window of a few seconds: each version also gets its exact
# creation time when moto makes it (_add_secret: CreateSecret, PutSecretValue, UpdateSecret;
# RotateSecret's pending version: _rotate_with_configured_function).
_CREATED = "keyrot_created"
_moto_add_secret = SecretsManagerBackend._add_secret
_moto_put_secret_value = SecretsManagerBackend.put_secret_value


def _stamp_new_versions(secret):
    now = time.time()
    for version in secret.versions.values():
        version.setdefault(_CREATED, now)


def _created(version):
    return version.get(_CREATED, version.get("createdate", 0))


def _add_secret_stamped(self, *args, **kwargs):
    secret, new_version = _moto_add_secret(self, *args, **kwargs)
    _stamp_new_versions(secret)
    return secret, new_version


def _forget_expired_versions(secret, keep=None):
    """AWS: beyond the limit, unlabelled versions older than the window go, oldest first.

    Never KEEP (a PutSecretValue's own token, which may be a retry) nor moto's default version
    (which UpdateSecretVersionStage does not move, and moto's later calls read)."""
    excess = len(secret.versions) - _max_versions
    if excess <= 0:
        return
    expired_before = time.time() - VERSION_RETENTION_SECONDS
    expired = sorted(
        (_created(version), version_id)
        for version_id, version in secret.versions.items()
        if not version["version_stages"]
        and _created(version) <= expired_before
        and version_id not in (keep, secret.default_version_id)
    )
    for _, version_id in expired[:excess]:
        del secret.versions[version_id]


def _put_within_version_limit(self, secret_id, secret_string, secret_binary,
                              client_request_token, version_stages):
    if not (_max_versions and self._is_valid_identifier(secret_id)):
        return _moto_put_secret_value(self, secret_id, secret_string, secret_binary,
                                      client_request_token, version_stages)
    secret = self.secrets[secret_id]
    _forget_expired_versions(secret, keep=client_request_token)
    young = time.time() - VERSION_RETENTION_SECONDS
    kept = [
        version_id
        for version_id, version in secret.versions.items()
        if version_id != client_request_token
        and (version["version_stages"] or _created(version) > young)
    ]
    if len(kept) >= _max_versions:
        raise LimitExceededException(
            f"secret {secret.name} already has {len(kept)} versions that cannot be removed "
            f"yet (labelled, or younger than {_RETENTION_TEXT})"
        )
    result = _moto_put_secret_value(self, secret_id, secret_string, secret_binary,
                                    client_request_token, version_stages)
    _forget_expired_versions(self.secrets[secret_id])
    return result


_RETENTION_TEXT = (
    "24 hours" if VERSION_RETENTION_SECONDS == 24 * 3600
    else f"{VERSION_RETENTION_SECONDS:g} seconds"
)
SecretsManagerBackend._add_secret = _add_secret_stamped
SecretsManagerBackend.put_secret_value = _put_within_version_limit

# BatchGetSecretValue's SecretIdList limit (API reference: 1 to 20 members).
BATCH_SECRET_ID_LIMIT = 20
_moto_batch_get_secret_value = SecretsManagerBackend.batch_get_secret_value


def _batch_get_current_values(self, secret_id_list=None, filters=None, max_results=None,
                              next_token=None):
    """AWS: each listed secret's AWSCURRENT value, or its error in Errors; one page."""
    if not secret_id_list or filters or max_results:
        # Filters, or an invalid combination: moto's own answer.
        return _moto_batch_get_secret_value(self, secret_id_list, filters, max_results,
                                            next_token)
    if len(secret_id_list) > BATCH_SECRET_ID_LIMIT:
        raise ValidationException(
            "1 validation error detected: Value at 'secretIdList' failed to satisfy "
            f"constraint: Member must have length less than or equal to {BATCH_SECRET_ID_LIMIT}"
        )
    values, errors = [], []
    for secret_id in secret_id_list:
        try:
            values.append(self.get_secret_value(secret_id, None, "AWSCURRENT"))
        except SecretsManagerClientError as error:
            errors.append(
                {"SecretId": secret_id, "ErrorCode": error.error_type, "Message": error.message}
            )
    return values, errors, None


SecretsManagerBackend.batch_get_secret_value = _batch_get_current_values


def _list_versions_with_creation(self, secret_id, *args, **kwargs):
    """AWS: each version's own CreatedDate (module docstring)."""
    listing = json.loads(_moto_list_secret_version_ids(self, secret_id, *args, **kwargs))
    versions = self.secrets[secret_id].versions
    for entry in listing.get("Versions", []):
        version = versions.get(entry["VersionId"])
        if version is not None:
            entry["CreatedDate"] = _created(version)
    return json.dumps(listing)


_moto_list_secret_version_ids = SecretsManagerBackend.list_secret_version_ids
SecretsManagerBackend.list_secret_version_ids = _list_versions_with_creation

_moto_get_caller_identity = STSBackend.get_caller_identity


def _key_age_seconds(backend, access_key_id):
    """How long ago IAM made this access key; None for a key IAM does not know."""
    iam = iam_backends[backend.account_id][backend.partition]
    user = iam.get_user_from_access_key_id(access_key_id)
    if user is None:
        return None
    for key in iam.list_access_keys(user.name):
        if key.access_key_id == access_key_id:
            created = key.create_date.replace(tzinfo=datetime.timezone.utc).timestamp()
            return time.time() - created
    return None


def _get_caller_identity_once_accepted(self, access_key_id, region):
    """AWS: a new access key is refused until it has propagated (module docstring)."""
    if STS_ACCEPTANCE_DELAY_SECONDS:
        age = _key_age_seconds(self, access_key_id)
        if age is not None and age < STS_ACCEPTANCE_DELAY_SECONDS:
            raise InvalidClientTokenIdError()
    return _moto_get_caller_identity(self, access_key_id, region)


STSBackend.get_caller_identity = _get_caller_identity_once_accepted

_invoker = RotationFunctionInvoker(os.environ.get("KEYROT_ROTATION_INVOKE_URL"))
# moto.secretsmanager imports get_backend at call time, so replacing it here is enough.
lambda_utils.get_backend = lambda account_id, region: _invoker

if __name__ == "__main__":
    main()
