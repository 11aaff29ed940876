"""moto server as keyrot's offline AWS.

moto's RotateSecret runs the rotation function through moto's Lambda backend, which needs
Docker. This launcher swaps that backend for rotation calls only: RotateSecret stages the new
version (AWSPENDING, no value) and enables rotation exactly as AWS does, and the caller drives
the four steps itself, as keyrot's integration tests do.

Usage: python moto_server.py -H 127.0.0.1 -p PORT   (the same flags as moto_server)
"""

import moto.awslambda.utils as lambda_utils
from moto.server import main


class _StepsDrivenByCaller:
    """Accepts any rotation function ARN; invoking it is left to the caller."""

    def get_function(self, function_name_or_arn, qualifier=None):
        return function_name_or_arn

    def invoke(self, function_name, qualifier, body, headers, response_headers):
        return None


_rotation_backend = _StepsDrivenByCaller()
# moto.secretsmanager imports get_backend at call time, so replacing it here is enough.
lambda_utils.get_backend = lambda account_id, region: _rotation_backend

if __name__ == "__main__":
    main()
