//! The `keyrot` binary against the whole local stack, with nothing but `AWS_ENDPOINT_URL`
//! (and, for the emergency revoke, `AWS_ENDPOINT_URL_LAMBDA`): status, doctor, a client added
//! and used through the local gateway, its key rotated with an overlap, its removal; rotate
//! and revoke. Needs the workspace's binaries built (`./scripts/test` builds them first).

use keyrot_integration_tests::local_stack::{bin_dir_of_test, LocalStack};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn keyrot(stack: &LocalStack, args: &[&str]) -> Run {
    let output = stack
        .operator_command(std::path::Path::new(env!("CARGO_BIN_EXE_keyrot")))
        .args(args)
        .output()
        .expect("run keyrot");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// One HTTP/1.1 request to the local gateway (loopback, plain HTTP).
fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\ncontent-length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    // The gateway may answer chunked: take the JSON object inside.
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) if end >= start => {
            serde_json::from_str(&body[start..=end]).unwrap_or(Value::Null)
        }
        _ => Value::Null,
    };
    (status, json)
}

fn token(api: &str, key: &str) -> (u16, Option<String>) {
    let (status, body) = http(
        "POST",
        &format!("{api}/generate-token"),
        &[("x-api-key", key)],
    );
    (status, body["token"].as_str().map(str::to_owned))
}

fn active_key(api: &str, key: &str, user: &str) -> (u16, Value) {
    let (status, token) = token(api, key);
    let Some(token) = token else {
        return (status, Value::Null);
    };
    let bearer = format!("Bearer {token}");
    http(
        "GET",
        &format!("{api}/active-key?username={user}"),
        &[("x-api-key", key), ("authorization", &bearer)],
    )
}

/// Polls until `check` holds (the authorizer caches the registry for 5 s locally).
fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_cli_runs_a_local_deployment_with_no_other_flag() {
    let stack = LocalStack::start(&bin_dir_of_test(), &["--interval-seconds", "3600"]);
    let api = stack.api();

    // status: both seeded users managed, nothing to attend to; the JSON matches the table.
    let status = keyrot(&stack, &["status"]);
    assert_eq!(status.code, 0, "{}{}", status.stdout, status.stderr);
    let status_json: Value =
        serde_json::from_str(&keyrot(&stack, &["--json", "status"]).stdout).expect("json");
    for user in ["alice", "bob"] {
        let entry = status_json["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["user"] == user)
            .cloned()
            .expect("user listed");
        assert_eq!(entry["state"], "managed");
        let key = entry["access_key_id"].as_str().expect("key").to_owned();
        let row = status
            .stdout
            .lines()
            .find(|l| l.starts_with(user))
            .expect("row");
        assert!(row.contains(&key), "{row}");
    }

    // doctor: the local stack passes every check it can make.
    let doctor = keyrot(&stack, &["doctor"]);
    assert_eq!(doctor.code, 0, "{}{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor.stdout.contains("✔ signing key fresh"),
        "{}",
        doctor.stdout
    );
    assert!(
        doctor.stdout.contains("✔ usage keys in the usage plan"),
        "{}",
        doctor.stdout
    );

    // clients add, then a real token and key through the gateway.
    let added = keyrot(
        &stack,
        &["--json", "clients", "add", "cli-ci", "--users", "alice"],
    );
    assert_eq!(added.code, 0, "{}{}", added.stdout, added.stderr);
    let added: Value = serde_json::from_str(&added.stdout).expect("json");
    let key = added["api_key"].as_str().expect("api key").to_owned();
    let mut served = Value::Null;
    eventually("the new client is served", Duration::from_secs(20), || {
        let (status, body) = active_key(&api, &key, "alice");
        served = body;
        status == 200
    });
    assert_eq!(served["UserName"], "alice");
    let (bob, _) = active_key(&api, &key, "bob");
    assert_eq!(bob, 403, "a user the client may not read");
    for output in [
        keyrot(&stack, &["clients", "list"]).stdout,
        keyrot(&stack, &["clients", "show", "cli-ci"]).stdout,
        keyrot(&stack, &["status"]).stdout,
        keyrot(&stack, &["--json", "status"]).stdout,
    ] {
        assert!(!output.contains(&key), "{output}");
        assert!(
            !output.contains(served["SecretAccessKey"].as_str().expect("secret")),
            "{output}"
        );
    }

    // rotate-key: old and new both work during the overlap, only the new one after it.
    let rotated = keyrot(
        &stack,
        &[
            "--json",
            "clients",
            "rotate-key",
            "cli-ci",
            "--grace-seconds",
            "12",
        ],
    );
    assert_eq!(rotated.code, 0, "{}", rotated.stderr);
    let rotated: Value = serde_json::from_str(&rotated.stdout).expect("json");
    let new_key = rotated["api_key"].as_str().expect("new key").to_owned();
    eventually("the new key works", Duration::from_secs(10), || {
        active_key(&api, &new_key, "alice").0 == 200
    });
    assert_eq!(
        active_key(&api, &key, "alice").0,
        200,
        "old key during the overlap"
    );
    eventually(
        "the old key is refused after the grace",
        Duration::from_secs(25),
        || active_key(&api, &key, "alice").0 == 401,
    );
    assert_eq!(active_key(&api, &new_key, "alice").0, 200);

    // remove: fetching is refused.
    let removed = keyrot(&stack, &["clients", "remove", "cli-ci"]);
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    eventually(
        "the removed client is refused",
        Duration::from_secs(20),
        || active_key(&api, &new_key, "alice").0 == 401,
    );

    // who-can-read: the default client reads alice.
    let who = keyrot(&stack, &["who-can-read", "alice"]);
    assert!(
        who.stdout.lines().any(|l| l.starts_with("default ")),
        "{}",
        who.stdout
    );

    // rotate: a routine rotation of bob's slot with the older key completes; within the
    // interval that key is still promised, so it carries forward.
    let before = status_json["users"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["user"] == "bob").cloned())
        .expect("bob");
    let rotate = keyrot(&stack, &["--json", "rotate", "bob"]);
    assert_eq!(rotate.code, 0, "{}{}", rotate.stdout, rotate.stderr);
    let rotate: Value = serde_json::from_str(&rotate.stdout).expect("json");
    assert_eq!(rotate["completed"], true, "{rotate}");
    assert_eq!(rotate["previous_key"], before["access_key_id"]);

    // revoke: bob's older key (slot A's; the API serves slot B's newer one) dies at once, the
    // clients that may hold it are named, and no rotation is needed. (Not the newest key:
    // revoking that starts a rotation from inside the function, which the local stack's
    // single function instance, invoked synchronously by moto's RotateSecret, cannot serve
    // while the revoke runs.)
    assert_eq!(rotate["carried_forward"], true, "{rotate}");
    let superseded = rotate["previous_key"]
        .as_str()
        .expect("previous key")
        .to_owned();
    let revoked = keyrot(
        &stack,
        &[
            "revoke",
            "bob",
            "--key",
            &superseded,
            "--reason",
            "cli test leak",
            "--yes",
        ],
    );
    assert_eq!(revoked.code, 0, "{}{}", revoked.stdout, revoked.stderr);
    assert!(
        revoked.stdout.contains("must fetch again: default"),
        "{}",
        revoked.stdout
    );
    let keys = stack.aws_cli(&[
        "iam",
        "list-access-keys",
        "--user-name",
        "bob",
        "--output",
        "text",
    ]);
    assert!(!keys.contains(&superseded), "{keys}");
    assert!(
        revoked.stdout.contains("no rotation was needed"),
        "{}",
        revoked.stdout
    );
    assert_eq!(keys.lines().count(), 1, "slot B's key stays: {keys}");
}
