//! End to end through the local stack, over HTTP and the AWS wire protocols: the real
//! function binaries behind the Lambda emulator, moto as AWS, the local API gateway.
//! Needs the function binaries built (`./scripts/test` builds them) and `.venv`.

use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyrot_integration_tests::local_stack::{workspace_root, LocalStack};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directory of `keyrot-local` and the function binaries.
fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_keyrot-local"))
        .parent()
        .expect("bin dir")
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn from(source: IpAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(source));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn send(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut request = hyper::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(Bytes::new())).expect("request"))
            .await
            .expect("HTTP call");
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

async fn token(http: &Http, api: &str, key: &str) -> String {
    let (status, body) = http
        .send(
            "POST",
            &format!("{api}/generate-token"),
            &[("x-api-key", key)],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_owned()
}

async fn active_key(http: &Http, api: &str, key: &str, token: &str, user: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    http.send(
        "GET",
        &format!("{api}/active-key?username={user}"),
        &[("x-api-key", key), ("authorization", &bearer)],
    )
    .await
}

async fn caller_arn(config: &aws_config::SdkConfig, key: &Value) -> String {
    let credentials = Credentials::new(
        key["AccessKeyId"].as_str().expect("id"),
        key["SecretAccessKey"].as_str().expect("secret"),
        None,
        None,
        "e2e",
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .credentials_provider(credentials)
            .build(),
    );
    sts.get_caller_identity()
        .send()
        .await
        .expect("STS")
        .arn
        .expect("arn")
}

async fn access_keys(
    iam: &aws_sdk_iam::Client,
    user: &str,
) -> Vec<aws_sdk_iam::types::AccessKeyMetadata> {
    iam.list_access_keys()
        .user_name(user)
        .send()
        .await
        .expect("list keys")
        .access_key_metadata
}

async fn keys_of(iam: &aws_sdk_iam::Client, user: &str) -> Vec<(String, bool)> {
    access_keys(iam, user)
        .await
        .into_iter()
        .map(|k| {
            (
                k.access_key_id.unwrap_or_default(),
                k.status.map(|s| s.as_str() == "Active").unwrap_or(false),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_stack_rotates_serves_and_refuses_as_deployed() {
    let stack = LocalStack::start(
        bin_dir(),
        &[
            "--allowed-cidrs",
            "127.0.0.1/32",
            "--token-ttl-seconds",
            "10",
            "--throttle-rate",
            "1",
            "--throttle-burst",
            "15",
            "--interval-seconds",
            "3600",
        ],
    );
    let api = stack.api();
    let key = stack.api_key();
    let http = Http::from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let aws = stack.aws().await;
    let iam = aws_sdk_iam::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let ssm = aws_sdk_ssm::Client::new(&aws);
    let mut handed_out: Vec<String> = vec![key.clone()];

    // Token, key, and the key works as alice.
    let first_token = token(&http, &api, &key).await;
    let first_issued = Instant::now();
    handed_out.push(first_token.clone());
    let (status, first) = active_key(&http, &api, &key, &first_token, "alice").await;
    assert_eq!(status, 200, "{first}");
    assert!(caller_arn(&aws, &first).await.ends_with(":user/alice"));
    handed_out.push(first["SecretAccessKey"].as_str().unwrap().to_owned());

    // Onboarding gave alice a key in each slot; the API serves the newer one, and both are
    // active (the older one is promised to whoever fetched it before).
    let keys = keys_of(&iam, "alice").await;
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(keys.iter().all(|(_, active)| *active), "{keys:?}");
    assert!(
        keys.contains(&(first["AccessKeyId"].as_str().unwrap().to_owned(), true)),
        "{keys:?}"
    );

    // Early rotations of either slot (an operator, a deploy, RotateSecret as anyone may call
    // it): every key is still promised, so each slot carries its key forward. A new version
    // completes and nothing is deleted.
    secrets
        .rotate_secret()
        .secret_id("keyrot/iam/alice/b")
        .send()
        .await
        .expect("rotate");
    secrets
        .rotate_secret()
        .secret_id("keyrot/iam/alice")
        .send()
        .await
        .expect("rotate");
    let (_, second) = active_key(&http, &api, &key, &first_token, "alice").await;
    assert_eq!(
        second["AccessKeyId"], first["AccessKeyId"],
        "carried forward"
    );
    assert_ne!(
        second["Version"], first["Version"],
        "a new version completed"
    );
    let mut after: Vec<String> = keys_of(&iam, "alice")
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut before: Vec<String> = keys.into_iter().map(|(id, _)| id).collect();
    after.sort();
    before.sort();
    assert_eq!(after, before, "no key deleted or added");
    assert!(caller_arn(&aws, &first).await.ends_with(":user/alice"));

    // The response says how long the key is promised and when a newer one is expected.
    let expiration = second["Expiration"].as_str().expect("Expiration");
    let refresh_after = second["RefreshAfter"].as_str().expect("RefreshAfter");
    assert!(refresh_after <= expiration, "{second}");

    // A second client, added without redeploy, that may read only bob.
    let other_key = "e2e0other0client0key0with0enough0entropy0000";
    handed_out.push(other_key.to_owned());
    secrets
        .create_secret()
        .name("keyrot/clients/other")
        .secret_string(json!({"ClientId": "other", "ApiKey": other_key}).to_string())
        .send()
        .await
        .expect("client secret");
    let other_usage_key = "keyrot-local-other-usage-0123456789";
    ssm.put_parameter()
        .name("/keyrot/clients/other")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .value(json!({"users": ["bob"], "usage_key": other_usage_key}).to_string())
        .send()
        .await
        .expect("client parameter");
    tokio::time::sleep(Duration::from_secs(6)).await; // the authorizer re-reads the registry every 5 s here
                                                      // As on AWS: authorized, but its usage key is no API key of the stage's usage plan yet.
    let (status, body) = http
        .send(
            "POST",
            &format!("{api}/generate-token"),
            &[("x-api-key", other_key)],
        )
        .await;
    assert_eq!(
        (status, body),
        (403, json!({"error": "forbidden", "message": "Forbidden"})),
        "usage key outside the usage plan"
    );
    // docs/deploy.md's raw client steps (what keyrot clients add does): create the usage key, attach it to the plan.
    let key_id = stack.aws_cli(&[
        "apigateway",
        "create-api-key",
        "--name",
        "keyrot-other",
        "--enabled",
        "--value",
        other_usage_key,
        "--query",
        "id",
        "--output",
        "text",
    ]);
    stack.aws_cli(&[
        "apigateway",
        "create-usage-plan-key",
        "--usage-plan-id",
        stack.ready["usage_plan_id"]
            .as_str()
            .expect("usage plan id"),
        "--key-type",
        "API_KEY",
        "--key-id",
        key_id.trim(),
    ]);
    let other_token = token(&http, &api, other_key).await;
    handed_out.push(other_token.clone());
    assert_eq!(
        active_key(&http, &api, other_key, &other_token, "bob")
            .await
            .0,
        200
    );
    // Refusals.
    assert_eq!(
        active_key(&http, &api, other_key, &other_token, "alice")
            .await
            .0,
        403,
        "another client's user"
    );
    assert_eq!(
        active_key(&http, &api, &key, &other_token, "alice").await.0,
        401,
        "token stolen from another client"
    );
    assert_eq!(
        active_key(&http, &api, "not-a-key", &first_token, "alice")
            .await
            .0,
        401,
        "unknown API key"
    );
    let from_elsewhere = Http::from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    assert_eq!(
        active_key(&from_elsewhere, &api, &key, &first_token, "alice")
            .await
            .0,
        403,
        "disallowed source IP"
    );
    let spoofed = from_elsewhere
        .send(
            "POST",
            &format!("{api}/generate-token"),
            &[("x-api-key", &key), ("x-forwarded-for", "127.0.0.1")],
        )
        .await;
    assert_eq!(spoofed.0, 403, "X-Forwarded-For is ignored");

    // Signing key rotation: fresh tokens work at once (an authorizer whose cached key set
    // lacks their kid reloads it), and the previous key's tokens until they expire.
    let before_rotation = token(&http, &api, &key).await;
    handed_out.push(before_rotation.clone());
    secrets
        .rotate_secret()
        .secret_id("keyrot/signing-key")
        .send()
        .await
        .expect("rotate signing key");
    let fresh = token(&http, &api, &key).await;
    handed_out.push(fresh.clone());
    assert_eq!(
        active_key(&http, &api, &key, &fresh, "alice").await.0,
        200,
        "token of the new key"
    );
    assert_eq!(
        active_key(&http, &api, &key, &before_rotation, "alice")
            .await
            .0,
        200,
        "token of the previous key"
    );

    // Expiry: the first token (10 s TTL, whole seconds) is dead once its TTL has passed.
    if let Some(rest) = Duration::from_secs(11).checked_sub(first_issued.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    assert_eq!(
        active_key(&http, &api, &key, &first_token, "alice").await.0,
        401,
        "expired token"
    );

    // Throttling: past the burst, 429.
    let mut statuses = Vec::new();
    for _ in 0..30 {
        statuses.push(active_key(&http, &api, &key, &fresh, "alice").await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 200);

    // Nothing handed out appears in any log of the run.
    let logs = stack.logs();
    assert!(
        logs.iter()
            .any(|(_, text)| text.contains("rotation step succeeded")),
        "the functions' logs are captured"
    );
    let console = stack.console();
    for secret in handed_out.iter().filter(|s| **s != key) {
        assert!(
            !console.contains(secret.as_str()),
            "the console shows only the default API key"
        );
    }
    // Ctrl-C stops everything: nothing listens on the stack's ports afterwards.
    let aws_endpoint = stack.ready["aws_endpoint"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let lambda_endpoint = stack.ready["lambda_endpoint"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let mut stack = stack;
    let status = stack.interrupt().expect("the stack stops on Ctrl-C");
    assert!(status.success(), "clean exit: {status}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for address in [aws_endpoint, lambda_endpoint] {
        assert!(
            std::net::TcpStream::connect(&address).is_err(),
            "{address} still listening after Ctrl-C"
        );
    }
    for secret in &handed_out {
        for (name, text) in &logs {
            assert!(
                !text.contains(secret.as_str()),
                "a secret, key or token was logged in {name}"
            );
        }
    }
}

/// The scheduler's counts (`scheduler.json` in the state directory).
fn scheduler_counts(stack: &LocalStack) -> Value {
    std::fs::read_to_string(stack.state_dir.join("scheduler.json"))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// RotateSecret until Secrets Manager accepts it (a tick or native window may be rotating).
async fn rotate_when_free(secrets: &aws_sdk_secretsmanager::Client, secret_id: &str) {
    for _ in 0..100 {
        match secrets.rotate_secret().secret_id(secret_id).send().await {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("RotateSecret on {secret_id} refused for 10 s");
}

/// The user's keys in IAM with their creation times, oldest first.
async fn keys_by_age(iam: &aws_sdk_iam::Client, user: &str) -> Vec<(String, f64)> {
    let mut keys: Vec<(String, f64)> = access_keys(iam, user)
        .await
        .into_iter()
        .map(|k| {
            let created = k.create_date.map(|d| d.as_secs_f64()).unwrap_or(0.0);
            (k.access_key_id.unwrap_or_default(), created)
        })
        .collect();
    keys.sort_by(|a, b| a.1.total_cmp(&b.1));
    keys
}

/// `keyrot revoke USER --key KEY` as an operator runs it against the local stack.
fn revoke_with_the_cli(stack: &LocalStack, user: &str, key: &str) -> std::process::Output {
    stack
        .operator_command(&bin_dir().join("keyrot"))
        .args(["revoke", user, "--key", key, "--reason", "soak", "--yes"])
        .output()
        .expect("run keyrot revoke")
}

/// The key lifetime contract from a consumer's side: boto3 (every 100 ms) and the real AWS
/// CLI (every 3 s), both on a `credential_process` profile that runs keyrot-credentials, keep
/// authenticating as alice through seven compressed intervals of ticks, native-window rotations
/// at random offsets, a manual rotation, one of alice's ticks failing in one slot (IAM refuses
/// CreateAccessKey, through the fault proxy the functions call AWS through), an operator's
/// revoke of alice's superseded key, a deploy that shortens the interval (the functions restart
/// with it) and a double rotation. Then a stuck rotation makes the tick refused, and counted,
/// as on AWS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_refreshing_at_refresh_after_never_holds_a_dead_key() {
    const INTERVAL_SECONDS: u64 = 8;
    // Seven: after onboarding the first keys are promised for up to three intervals.
    const SOAK_SECONDS: u64 = 7 * INTERVAL_SECONDS;
    const SHORTER_INTERVAL_SECONDS: u64 = 5;
    // The functions reach moto through the fault proxy; consumers and the test reach it
    // directly. moto's port is chosen here so that the proxy knows it before the stack starts.
    let moto_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let proxy = keyrot_integration_tests::fault_proxy::FaultProxy::start(&format!(
        "http://127.0.0.1:{moto_port}"
    ))
    .await;
    let stack = LocalStack::start(
        bin_dir(),
        &[
            "--interval-seconds",
            &INTERVAL_SECONDS.to_string(),
            "--native-window-seconds",
            "5",
            "--aws-port",
            &moto_port.to_string(),
            "--functions-aws-endpoint",
            proxy.url(),
        ],
    );
    let aws = stack.aws().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let iam = aws_sdk_iam::Client::new(&aws);
    let consumer = Command::new(workspace_root().join(".venv/bin/python"))
        .arg(workspace_root().join("tests/consumer_soak.py"))
        .args([
            stack.api().as_str(),
            stack.ready["aws_endpoint"].as_str().expect("endpoint"),
            "alice",
            &SOAK_SECONDS.to_string(),
            bin_dir()
                .join("keyrot-credentials")
                .to_str()
                .expect("utf-8"),
        ])
        .env("KEYROT_API_KEY", stack.api_key())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the consumer");

    // While they run: a manual rotation, a failed tick, a revoke, a shortening deploy, a
    // double rotation, and the key count.
    let mut most_keys = 0;
    let started = Instant::now();
    let mut manual_done = false;
    let mut fault_armed = false;
    let mut deploy_done = false;
    let mut shortened = false;
    let mut revoked: Option<String> = None;
    let mut revoke_attempts = Vec::new();
    while started.elapsed() < Duration::from_secs(SOAK_SECONDS) {
        let elapsed = started.elapsed().as_secs();
        if !manual_done && elapsed >= 13 {
            rotate_when_free(&secrets, "keyrot/iam/alice").await;
            manual_done = true;
        }
        if !fault_armed && elapsed >= 17 {
            // The next key minted for alice (a tick, normally) fails its createSecret step:
            // IAM refuses it, as while a change to keyrot's role is still propagating.
            // (LimitExceeded would not do: keyrot retries it, as IAM's lag after a deletion.)
            proxy.inject_when(
                "CreateAccessKey",
                "UserName=alice",
                keyrot_integration_tests::fault_proxy::Fault::Reject {
                    status: 403,
                    code: "AccessDenied",
                },
                1,
            );
            fault_armed = true;
        }
        if !shortened && elapsed >= 30 {
            // A deploy that shortens the interval: keys handed out before it keep the
            // Expiration they came with.
            stack.redeploy(&json!({ "interval_seconds": SHORTER_INTERVAL_SECONDS }));
            shortened = true;
        }
        if !deploy_done && elapsed >= 36 {
            rotate_when_free(&secrets, "keyrot/iam/alice").await;
            rotate_when_free(&secrets, "keyrot/iam/alice").await;
            deploy_done = true;
        }
        // The revoke: alice's older key, once the newer one has been handed out for 3 s (the
        // consumers have moved on: RefreshAfter is a slack of 1 s after a tick). Before the
        // deploy: after it, a consumer may rightly hold the older key until the Expiration it
        // was given under the longer interval.
        if revoked.is_none() && (20..30).contains(&elapsed) && revoke_attempts.len() < 20 {
            let keys = keys_by_age(&iam, "alice").await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0);
            if let [(older, _), (_, newest_created)] = keys.as_slice() {
                if now - newest_created >= 3.0 {
                    let output = revoke_with_the_cli(&stack, "alice", older);
                    if output.status.success() {
                        revoked = Some(older.clone());
                    } else {
                        revoke_attempts.push(String::from_utf8_lossy(&output.stderr).into_owned());
                    }
                }
            }
        }
        most_keys = most_keys.max(keys_of(&iam, "alice").await.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let output = consumer.wait_with_output().expect("consumer output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "consumer failed: {stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).expect("consumer summary");
    let counts = scheduler_counts(&stack);
    let mut versions = Vec::new();
    for secret in ["keyrot/iam/alice", "keyrot/iam/alice/b"] {
        let listed = secrets
            .list_secret_version_ids()
            .secret_id(secret)
            .include_deprecated(true)
            .send()
            .await
            .expect("versions");
        versions.push(format!("{secret} {}", listed.versions().len()));
    }
    let fetches = stack.api_requests("GET", "/active-key");
    let faults = proxy.faults_applied();
    let keys_per_interval =
        summary["keys"].as_f64().unwrap_or(0.0) * INTERVAL_SECONDS as f64 / SOAK_SECONDS as f64;
    let report = format!(
        "consumer soak over {SOAK_SECONDS} s ({INTERVAL_SECONDS} s interval; boto3 and the AWS \
         CLI on credential_process): {summary}\n\
         keys alice was handed per interval: {keys_per_interval:.2}; fetches by the helper: \
         {fetches}; versions (ticks, native windows every 5 s, manual and deploy rotations): {}\n\
         rotations started: {counts}; most keys alice held at once: {most_keys}\n\
         faults injected: {faults:?}; revoked: {revoked:?}\n",
        versions.join(", ")
    );
    eprint!("{report}");
    // cargo test hides a passing test's output: ./scripts/test prints this file afterwards.
    let report_dir = workspace_root().join("target").join("keyrot");
    let _ = std::fs::create_dir_all(&report_dir);
    let _ = std::fs::write(report_dir.join("consumer-soak.txt"), &report);

    assert_eq!(
        summary["failed"], 0,
        "boto3 calls with a dead key: {summary}"
    );
    assert_eq!(
        summary["cli_failed"], 0,
        "AWS CLI calls with a dead key: {summary}"
    );
    assert_eq!(summary["past_expiration"], 0, "{summary}");
    assert!(summary["calls"].as_u64().unwrap_or(0) >= 200, "{summary}");
    assert!(summary["cli_calls"].as_u64().unwrap_or(0) >= 5, "{summary}");
    // Keys rotated. Not one per interval here: the keys made at onboarding are promised for
    // up to three intervals, the failed tick costs one, and after the shortening deploy a key
    // promised under the longer interval is carried past the new schedule's first tick (runs
    // here: 3 to 6). The cadence itself is measured by scripts/bench-slots.
    assert!(
        summary["keys"].as_u64().unwrap_or(0) >= 3,
        "keys rotated: {summary}"
    );
    // The helper fetches about once per key (RefreshAfter), then once a second while a
    // rotation is late; not at every one of botocore's refreshes.
    assert!(fetches as u64 <= SOAK_SECONDS, "{fetches} fetches");
    assert!(most_keys <= 2, "IAM's limit, never exceeded");
    assert_eq!(faults.len(), 1, "the injected failure happened: {faults:?}");
    // The refused CreateAccessKey failed one of alice's steps (and mailed the admin); the
    // consumers never noticed.
    let failed_steps: Vec<String> = stack
        .logs()
        .iter()
        .flat_map(|(_, text)| text.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| line.contains("rotation step failed") && line.contains("keyrot/iam/alice"))
        .collect();
    assert_eq!(failed_steps.len(), 1, "{failed_steps:?}");
    assert!(failed_steps[0].contains("AccessDenied"), "{failed_steps:?}");
    assert!(
        counts["tick"]["accepted"].as_u64().unwrap_or(0) >= 4,
        "{counts}"
    );
    assert!(
        counts["native_window"]["accepted"].as_u64().unwrap_or(0) >= 4,
        "{counts}"
    );
    let revoked = revoked.unwrap_or_else(|| panic!("no revoke went through: {revoke_attempts:?}"));
    let deployed = format!("deployed again, interval {SHORTER_INTERVAL_SECONDS} s");
    assert!(
        stack.console().contains(&deployed),
        "the shortening deploy happened: {}",
        stack.console()
    );
    assert!(
        !keys_of(&iam, "alice")
            .await
            .iter()
            .any(|(id, _)| *id == revoked),
        "the revoked key is gone"
    );

    // A stuck rotation (a version left AWSPENDING, as a failed rotation leaves it): the next
    // tick of bob's secret is refused (Secrets Manager would refuse it), and counted.
    let current = secrets
        .get_secret_value()
        .secret_id("keyrot/iam/bob")
        .version_stage("AWSCURRENT")
        .send()
        .await
        .expect("bob's current value");
    let refused_before = counts["tick"]["refused_in_progress"].as_u64().unwrap_or(0);
    let mut stuck = false;
    for _ in 0..50 {
        // A native window or tick may be rotating bob right now; PutSecretValue for a new
        // pending version succeeds once that one has finished.
        let put = secrets
            .put_secret_value()
            .secret_id("keyrot/iam/bob")
            .secret_string(current.secret_string().unwrap_or_default())
            .version_stages("AWSPENDING")
            .send()
            .await;
        if put.is_ok() {
            stuck = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stuck, "could not leave a pending version on bob's secret");
    let deadline = Instant::now() + Duration::from_secs(3 * INTERVAL_SECONDS);
    let refused = loop {
        let refused = scheduler_counts(&stack)["tick"]["refused_in_progress"]
            .as_u64()
            .unwrap_or(0);
        if refused > refused_before || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(refused > refused_before, "the refused tick is counted");
    // The fleet confirms with DescribeSecret and does not ask Secrets Manager at all: its log
    // says which secret and why.
    assert!(
        stack
            .logs()
            .iter()
            .any(|(_, text)| text.lines().any(|line| {
                line.contains("rotation_refused_in_progress") && line.contains("keyrot/iam/bob")
            })),
        "the refusal says why"
    );
    // Each completed rotation reports the secret's version count as a metric.
    assert!(
        stack
            .logs()
            .iter()
            .any(|(_, text)| text.contains("\"SecretVersionCount\"")),
        "the version metric is emitted"
    );
}
