"""moto server as keyrot's offline AWS.

moto's RotateSecret runs the rotation function through moto's Lambda backend, which needs
Docker. This launcher swaps that backend for rotation calls only:

* with KEYROT_ROTATION_INVOKE_URL set (a Lambda Invoke API such as `cargo lambda watch`), each
  step is POSTed to `<url>/2015-03-31/functions/<function name>/invocations`, so RotateSecret
  runs the real rotation function, as on AWS; a failed step fails RotateSecret with its error;
* without it, RotateSecret only stages the new version (AWSPENDING, no value) and enables
  rotation, and the caller drives the four steps itself, as keyrot's integration tests do.

It also fixes one moto divergence that keyrot depends on: a RotateSecret that names no
rotation function (as a schedule's `{"SecretId": ...}` does) must use the configured one, as
on AWS; moto instead forgets it and marks the empty new version AWSCURRENT.

Usage: python moto_server.py -H 127.0.0.1 -p PORT   (the same flags as moto_server)
"""

import json
import os
import urllib.error
import urllib.request

import moto.awslambda.utils as lambda_utils
from moto.secretsmanager.exceptions import InvalidRequestException
from moto.secretsmanager.models import SecretsManagerBackend
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
            raise InvalidRequestException(
                f"rotation function {name} failed at {step}: {_describe(error.read())}"
            ) from None
        except OSError as error:
            raise InvalidRequestException(
                f"rotation function {name} could not be invoked at {step}: {error}"
            ) from None


def _describe(payload):
    try:
        error = json.loads(payload)
        return f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")[:500]


_moto_rotate_secret = SecretsManagerBackend.rotate_secret


def _rotate_with_configured_function(self, secret_id, client_request_token=None,
                                     rotation_lambda_arn=None, rotation_rules=None,
                                     rotate_immediately=True):
    if not rotation_lambda_arn and self._is_valid_identifier(secret_id):
        rotation_lambda_arn = self.secrets[secret_id].rotation_lambda_arn or None
    return _moto_rotate_secret(
        self,
        secret_id=secret_id,
        client_request_token=client_request_token,
        rotation_lambda_arn=rotation_lambda_arn,
        rotation_rules=rotation_rules,
        rotate_immediately=rotate_immediately,
    )


SecretsManagerBackend.rotate_secret = _rotate_with_configured_function

_invoker = RotationFunctionInvoker(os.environ.get("KEYROT_ROTATION_INVOKE_URL"))
# moto.secretsmanager imports get_backend at call time, so replacing it here is enough.
lambda_utils.get_backend = lambda account_id, region: _invoker

if __name__ == "__main__":
    main()
