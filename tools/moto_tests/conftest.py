"""Fixtures of the moto launcher's tests: tools/moto_server.py started as a subprocess on a free
loopback port (always stopped afterwards), boto3 clients for it, and a stand-in rotation
function behind a Lambda Invoke API for the launcher's KEYROT_ROTATION_INVOKE_URL.

Every wait is bounded: the server must answer within SERVER_START_SECONDS, each AWS call
within CALL_TIMEOUT_SECONDS, and a server that must refuse to start must exit within
SERVER_START_SECONDS."""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# KEYROT_MOTO_SERVER lets a mutated copy of the launcher be checked, to see that the tests can
# fail.
MOTO_SERVER = os.environ.get("KEYROT_MOTO_SERVER", os.path.join(ROOT, "tools", "moto_server.py"))
VENV_PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
PYTHON = VENV_PYTHON if os.path.exists(VENV_PYTHON) else sys.executable

SERVER_START_SECONDS = 30
CALL_TIMEOUT_SECONDS = 30
REGION = "us-east-1"
ROTATION_FUNCTION = "keyrot-rotation-test"
ROTATION_LAMBDA_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{ROTATION_FUNCTION}"
# The launcher's own variables: a test sets the ones it means, never inherits them.
LAUNCHER_VARIABLES = (
    "KEYROT_MOTO_MAX_VERSIONS",
    "KEYROT_MOTO_VERSION_RETENTION_SECONDS",
    "KEYROT_MOTO_ROTATION_RETRY_SECONDS",
    "KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS",
    "KEYROT_ROTATION_INVOKE_URL",
)

# The version limit's server: 5 versions, a 2-second retention window.
MAX_VERSIONS = 5
RETENTION_SECONDS = 2
# Long enough for a version made just before to be out of the window.
PAST_WINDOW_SECONDS = RETENTION_SECONDS + 0.5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher_env(**variables):
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    env.update({k: str(v) for k, v in variables.items()})
    return env


def run_launcher(**variables):
    """Runs the launcher expecting it to exit at once; its CompletedProcess."""
    return subprocess.run(
        [PYTHON, MOTO_SERVER, "-H", "127.0.0.1", "-p", str(free_port())],
        env=launcher_env(**variables),
        capture_output=True,
        text=True,
        timeout=SERVER_START_SECONDS,
    )


class MotoServer:
    """tools/moto_server.py on a free loopback port; stop() always ends it."""

    def __init__(self, log_path, **variables):
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [PYTHON, MOTO_SERVER, "-H", "127.0.0.1", "-p", self.url.rsplit(":", 1)[1]],
            env=launcher_env(**variables),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self):
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"moto_server.py exited ({self.process.returncode}):\n{self.log()}")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"moto_server.py not ready after {SERVER_START_SECONDS} s:\n{self.log()}")

    def log(self):
        self._log.flush()
        with open(self.log_path, errors="replace") as log:
            return log.read()[-4000:]

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


def start_server(tmp_path_factory, name, **variables):
    server = MotoServer(tmp_path_factory.mktemp(name) / "moto.log", **variables)
    try:
        return server.wait_ready()
    except BaseException:
        server.stop()
        raise


def secrets_client(url):
    return boto3.client(
        "secretsmanager",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=5,
            read_timeout=CALL_TIMEOUT_SECONDS,
        ),
    )


def unique_name(label):
    """A secret name no other test uses (the servers are shared within a module)."""
    return f"kr-moto-tests/{uuid.uuid4().hex[:12]}/{label}"


def stages(client, secret_id):
    """VersionId -> staging labels, as DescribeSecret reports them."""
    return client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})


def version_with(client, secret_id, stage):
    return [v for v, labels in stages(client, secret_id).items() if stage in labels]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """The launcher without an Invoke API, with a version limit of MAX_VERSIONS and a
    RETENTION_SECONDS window: URL of the server."""
    server = start_server(
        tmp_path_factory,
        "moto",
        KEYROT_MOTO_MAX_VERSIONS=MAX_VERSIONS,
        KEYROT_MOTO_VERSION_RETENTION_SECONDS=RETENTION_SECONDS,
    )
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def sm(moto):
    return secrets_client(moto)


class RotationFunction:
    """A rotation function behind a Lambda Invoke API, as `cargo lambda watch` serves one.

    It records every invocation (function name, event) and does what a rotation function
    does: createSecret puts the value `value-<token>` as AWSPENDING, finishSecret moves
    AWSCURRENT to the token (leaving AWSPENDING there, as AWS's templates do). A secret whose
    name contains `fails-at-<step>` makes that step fail as a Lambda function error: HTTP 500
    with an errorType/errorMessage body; `fails-once-at-<step>` fails only its first call."""

    def __init__(self):
        self.calls = []
        self.moto_url = None
        function = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                match = re.fullmatch(r"/2015-03-31/functions/([^/]+)/invocations", self.path)
                event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, body = function.invoke(match.group(1) if match else None, event)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def invoke(self, name, event):
        self.calls.append((name, event))
        step, secret_id, token = event["Step"], event["SecretId"], event["ClientRequestToken"]
        if name is None:
            return 404, {"errorType": "ResourceNotFoundException", "errorMessage": "no route"}
        if f"fails-at-{step}" in secret_id:
            return 500, {"errorType": "RotationError", "errorMessage": f"{step} refused"}
        if f"fails-once-at-{step}" in secret_id and self.steps_for(secret_id).count(step) == 1:
            return 500, {"errorType": "RotationError", "errorMessage": f"{step} refused once"}
        client = secrets_client(self.moto_url)
        if step == "createSecret":
            client.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=token,
                SecretString=f"value-{token}",
                VersionStages=["AWSPENDING"],
            )
        elif step == "finishSecret":
            current = version_with(client, secret_id, "AWSCURRENT")[0]
            if current != token:
                client.update_secret_version_stage(
                    SecretId=secret_id,
                    VersionStage="AWSCURRENT",
                    MoveToVersionId=token,
                    RemoveFromVersionId=current,
                )
        return 200, None

    def steps_for(self, secret_id):
        return [event["Step"] for _, event in self.calls if event["SecretId"] == secret_id]

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def invoking_stack(tmp_path_factory, name, **variables):
    """The launcher with KEYROT_ROTATION_INVOKE_URL pointing at a RotationFunction, and
    VARIABLES: yields (Secrets Manager client, the function)."""
    function = RotationFunction()
    server = None
    try:
        server = start_server(
            tmp_path_factory, name, KEYROT_ROTATION_INVOKE_URL=function.url, **variables
        )
        function.moto_url = server.url
        yield secrets_client(server.url), function
    finally:
        if server is not None:
            server.stop()
        function.stop()


@pytest.fixture(scope="module")
def rotation_stack(tmp_path_factory):
    """An Invoke API and no version limit: (Secrets Manager client, the function)."""
    yield from invoking_stack(tmp_path_factory, "moto-invoke")


@pytest.fixture(scope="module")
def retrying_rotation_stack(tmp_path_factory):
    """As rotation_stack, with failed rotations reattempted after half a second."""
    yield from invoking_stack(
        tmp_path_factory, "moto-retry", KEYROT_MOTO_ROTATION_RETRY_SECONDS="0.5"
    )
