"""tools/moto_server.py's version limit and retention (KEYROT_MOTO_MAX_VERSIONS,
KEYROT_MOTO_VERSION_RETENTION_SECONDS): PutSecretValue is refused once a secret holds the
maximum of versions that are labelled or younger than the window; unlabelled versions older
than the window stop counting and, beyond the maximum, are forgotten, oldest first.

The window is RETENTION_SECONDS (2 s): a machine busy enough to take that long over a few calls
makes a young version old before the check. Such a run proves nothing (TooSlow) and the
scenario starts again with a new secret, at most ATTEMPTS times."""

import functools
import time
import warnings

import pytest
from botocore.exceptions import ClientError

from conftest import (
    MAX_VERSIONS,
    PAST_WINDOW_SECONDS,
    RETENTION_SECONDS,
    run_launcher,
    unique_name,
    version_with,
)

ATTEMPTS = 3


class TooSlow(Exception):
    """A version that had to be inside the window may have left it before the check."""


def in_window(scenario):
    """Runs SCENARIO(sm) until it is not TooSlow, at most ATTEMPTS times."""

    @functools.wraps(scenario)
    def run(sm):
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return scenario(sm)
            except TooSlow as slow:
                if attempt == ATTEMPTS:
                    pytest.fail(f"too slow for a {RETENTION_SECONDS} s window, {ATTEMPTS} times: "
                                f"{slow}")
                warnings.warn(f"{scenario.__name__}: {slow}; starting again", stacklevel=1)

    return run


def put(sm, name, value, stages=None):
    """PutSecretValue (AWSCURRENT unless STAGES); the new VersionId."""
    extra = {} if stages is None else {"VersionStages": stages}
    return sm.put_secret_value(SecretId=name, SecretString=value, **extra)["VersionId"]


def refused(sm, name, since, stages=None):
    """The error of a PutSecretValue that must be refused because versions made since SINCE
    (a time.time()) are inside the window; TooSlow if accepted when they may have left it."""
    try:
        put(sm, name, "one too many", stages)
    except ClientError as error:
        return error.response["Error"]
    age = time.time() - since
    if age >= RETENTION_SECONDS:
        raise TooSlow(f"the versions that should count were up to {age:.2f} s old")
    pytest.fail(f"PutSecretValue accepted while versions made {age:.2f} s ago count")


def listed(sm, name):
    """Every version ListSecretVersionIds reports, deprecated (unlabelled) ones included."""
    response = sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)
    return {v["VersionId"]: v.get("VersionStages", []) for v in response["Versions"]}


@in_window
def test_limit_refuses_then_unlabelled_versions_past_the_window_stop_counting_and_go(sm):
    name = unique_name("unlabelled")
    # Five versions inside the window: AWSCURRENT, AWSPREVIOUS and three unlabelled.
    since = time.time()
    first = sm.create_secret(Name=name, SecretString="v0")["VersionId"]
    made = [first] + [put(sm, name, f"v{i}") for i in range(1, MAX_VERSIONS)]
    error = refused(sm, name, since)
    assert error["Code"] == "LimitExceededException"
    assert f"already has {MAX_VERSIONS} versions" in error["Message"]
    assert f"younger than {RETENTION_SECONDS:g} seconds" in error["Message"]
    assert set(listed(sm, name)) == set(made), "a refused put adds no version"

    time.sleep(PAST_WINDOW_SECONDS)
    # Only AWSCURRENT and AWSPREVIOUS still count: room for three more; each put moves the
    # labels on, and the versions made now are young: five in all, then refused again.
    since = time.time()
    after = [put(sm, name, f"w{i}") for i in range(MAX_VERSIONS)]
    assert refused(sm, name, since)["Code"] == "LimitExceededException"

    # Beyond the maximum, the oldest unlabelled versions past the window were forgotten, one
    # a put: ListSecretVersionIds shows exactly what the limit counts; the first one is gone.
    versions = listed(sm, name)
    assert set(versions) == set(after), versions
    assert versions[after[-1]] == ["AWSCURRENT"]
    assert versions[after[-2]] == ["AWSPREVIOUS"]
    with pytest.raises(ClientError) as gone:
        sm.get_secret_value(SecretId=name, VersionId=first)
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"


@in_window
def test_labelled_versions_count_however_old_and_are_never_forgotten(sm):
    name = unique_name("labelled")
    sm.create_secret(Name=name, SecretString="v0")
    current = put(sm, name, "v1")  # AWSCURRENT; the first version now holds AWSPREVIOUS
    previous = version_with(sm, name, "AWSPREVIOUS")[0]
    time.sleep(PAST_WINDOW_SECONDS)

    # AWSCURRENT and AWSPREVIOUS are past the window but labelled, so they count: with three
    # young versions (AWSPENDING moves on to each, leaving two unlabelled) the secret is full.
    since = time.time()
    young = [put(sm, name, f"p{i}", ["AWSPENDING"]) for i in range(MAX_VERSIONS - 2)]
    error = refused(sm, name, since, ["AWSPENDING"])
    assert error["Code"] == "LimitExceededException"
    assert f"already has {MAX_VERSIONS} versions" in error["Message"]
    versions = listed(sm, name)
    assert set(versions) == {current, previous, *young}
    assert versions[current] == ["AWSCURRENT"] and versions[previous] == ["AWSPREVIOUS"]

    # Once the young ones are past the window only the three labelled ones count: three more
    # puts fit. The unlabelled versions past the window are forgotten beyond the maximum, the
    # labelled ones never, however old: they are still there and still count.
    time.sleep(PAST_WINDOW_SECONDS)
    since = time.time()
    later = [put(sm, name, f"q{i}", ["AWSPENDING"]) for i in range(MAX_VERSIONS - 2)]
    assert refused(sm, name, since, ["AWSPENDING"])["Code"] == "LimitExceededException"
    versions = listed(sm, name)
    assert set(versions) == {current, previous, *later}, versions
    assert versions[current] == ["AWSCURRENT"] and versions[previous] == ["AWSPREVIOUS"]


@in_window
def test_a_version_counts_until_the_window_has_passed_to_the_subsecond(sm):
    """moto stamps versions in whole seconds; a window of a few seconds needs finer ages."""
    name = unique_name("subsecond")
    sm.create_secret(Name=name, SecretString="v0")
    # The version that will be unlabelled is made late in a second (at .92): on moto's
    # whole-second stamp it would look 0.92 s older than it is.
    time.sleep((0.92 - time.time() % 1) % 1)
    since = time.time()
    put(sm, name, "soon unlabelled", ["AWSPENDING"])
    put(sm, name, "p", ["AWSPENDING"])
    for label in range(MAX_VERSIONS - 3):
        put(sm, name, f"l{label}", [f"LABEL{label}"])

    # 1.25 s old: 2.17 s on a whole-second stamp.
    time.sleep(max(0, since + 1.25 - time.time()))
    assert refused(sm, name, since, ["AWSPENDING"])["Code"] == "LimitExceededException"
    time.sleep(max(0, since + PAST_WINDOW_SECONDS - time.time()))
    put(sm, name, "past the window", ["AWSPENDING"])


@in_window
def test_motos_default_version_is_kept_when_unlabelled(sm):
    """moto's "default" version (GetSecretValue without a stage, and where a put that makes a
    new AWSCURRENT moves AWSPREVIOUS to) stays where CreateSecret put it when AWSCURRENT moves
    by UpdateSecretVersionStage, as keyrot's rotations do. It must not be forgotten, or moto
    fails such a put with an internal error."""
    name = unique_name("default")
    since = time.time()
    created = sm.create_secret(Name=name, SecretString="v0")["VersionId"]
    for i in range(1, MAX_VERSIONS):  # rotations: AWSPENDING, then AWSCURRENT moved to it
        token = put(sm, name, f"v{i}", ["AWSPENDING"])
        sm.update_secret_version_stage(
            SecretId=name,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=version_with(sm, name, "AWSCURRENT")[0],
        )
    assert refused(sm, name, since, ["AWSPENDING"])["Code"] == "LimitExceededException"
    versions = listed(sm, name)
    assert len(versions) == MAX_VERSIONS and versions[created] == []

    time.sleep(PAST_WINDOW_SECONDS)
    put(sm, name, "next", ["AWSPENDING"])
    versions = listed(sm, name)
    assert created in versions, "moto's default version was forgotten"
    assert len(versions) == MAX_VERSIONS, "the oldest other unlabelled version goes instead"
    # A put that makes a new AWSCURRENT: moto moves AWSPREVIOUS onto its default version.
    stages = sm.put_secret_value(SecretId=name, SecretString="newest")["VersionStages"]
    assert stages == ["AWSCURRENT"]


@pytest.mark.parametrize("value", ["abc", "0", "-2", "nan", "inf", "1 day"])
def test_bad_retention_stops_the_launcher_with_a_message_naming_it(value):
    result = run_launcher(KEYROT_MOTO_MAX_VERSIONS=5, KEYROT_MOTO_VERSION_RETENTION_SECONDS=value)
    assert result.returncode != 0
    assert "KEYROT_MOTO_VERSION_RETENTION_SECONDS" in result.stderr
    assert repr(value) in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_max_versions_stops_the_launcher_with_a_message_naming_it():
    result = run_launcher(KEYROT_MOTO_MAX_VERSIONS="many")
    assert result.returncode != 0
    assert "KEYROT_MOTO_MAX_VERSIONS" in result.stderr
    assert "Traceback" not in result.stderr


def test_each_version_is_listed_with_its_own_creation_time(sm):
    name = unique_name("created-dates")
    before = time.time()
    sm.create_secret(Name=name, SecretString="first")
    time.sleep(0.3)
    middle = time.time()
    second = put(sm, name, "second")
    after = time.time()
    time.sleep(0.3)
    created = {
        v["VersionId"]: v["CreatedDate"].timestamp()
        for v in sm.list_secret_version_ids(SecretId=name, IncludeDeprecated=True)["Versions"]
    }
    assert len(created) == 2
    first = next(version for version in created if version != second)
    assert before - 0.01 <= created[first] <= middle, created
    assert middle <= created[second] <= after + 0.01, created
