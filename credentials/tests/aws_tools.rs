//! The real AWS CLI and boto3 (from `.venv`) using a profile whose `credential_process` is the
//! built helper, against the local stack with compressed rotation: every call authenticates as
//! the user across rotations, and the API is asked only when a newer key is expected.

mod support;

use serde_json::Value;
use std::time::Duration;
use support::*;

/// Rotation interval of the CLI test's stack: short enough for several rotations per test.
const INTERVAL_SECONDS: u64 = 15;
/// The boto3 test's interval. `RefreshAfter` allows a tenth of the interval for the other
/// slot's tick to finish. A tick mints at once (no wait for an earlier promise), but the
/// local fleet runs only every tenth of the interval, and onboarding adds slot B a run
/// later: at 20 s each allowance is 2 s, and the run (four intervals) stays under the CLI
/// test's length, which runs beside it.
const BOTO3_INTERVAL_SECONDS: u64 = 20;

fn caller_arn(
    stderrs: &mut Vec<String>,
    consumer: &Consumer,
    config: &std::path::Path,
    profile: &str,
    endpoint: &str,
) -> String {
    let output = consumer.aws_cli(
        config,
        &[
            "sts",
            "get-caller-identity",
            "--profile",
            profile,
            "--endpoint-url",
            endpoint,
            "--output",
            "json",
        ],
    );
    assert!(output.status.success(), "aws sts: {}", stderr(&output));
    stderrs.push(stderr(&output));
    let identity: Value = serde_json::from_slice(&output.stdout).expect("identity JSON");
    identity["Arn"].as_str().expect("Arn").to_owned()
}

/// When each `GET /active-key` reached the gateway, in seconds.
fn fetch_times(gateway_log: &str) -> Vec<f64> {
    gateway_log
        .lines()
        .filter(|line| line.contains(" GET /v1/active-key "))
        .filter_map(|line| line.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn the_aws_cli_authenticates_as_the_user_before_and_after_three_rotations() {
    let interval = INTERVAL_SECONDS.to_string();
    let stack = start_stack(&["--interval-seconds", &interval]);
    let consumer = Consumer::new("cli", &stack.api(), &stack.api_key());
    let config = consumer.aws_config(&["alice"]);
    let endpoint = stack.aws_endpoint();
    let key_id = || {
        credentials(&consumer.run("alice", &[]))["AccessKeyId"]
            .as_str()
            .expect("id")
            .to_owned()
    };

    // A `write --watch` daemon beside the CLI: it must follow the same rotations.
    let watched = consumer.dir.join("credentials");
    let mut watch = consumer.helper(
        "alice",
        &["write", "--watch", "--profile", "keyrot-alice", "--file"],
    );
    watch.arg(&watched).stderr(std::process::Stdio::null());
    let mut watcher = Daemon::spawn(watch);

    let mut stderrs = Vec::new();
    let mut seen = vec![key_id()];
    assert!(
        caller_arn(&mut stderrs, &consumer, &config, "keyrot-alice", &endpoint)
            .ends_with(":user/alice")
    );
    for rotation in 1..=3 {
        // The schedule rotates every interval; the helper hands out the new key once keyrot
        // says one is expected (RefreshAfter).
        let previous = seen.last().cloned().unwrap_or_default();
        let next = wait_for(
            &format!("rotation {rotation} reaches the helper"),
            Duration::from_secs(INTERVAL_SECONDS * 4),
            || Some(key_id()).filter(|id| *id != previous),
        );
        seen.push(next);
        let arn = caller_arn(&mut stderrs, &consumer, &config, "keyrot-alice", &endpoint);
        assert!(
            arn.ends_with(":user/alice"),
            "after rotation {rotation}: {arn}"
        );
    }
    seen.dedup();
    assert_eq!(seen.len(), 4, "four distinct keys: {seen:?}");
    let last = seen.last().cloned().unwrap_or_default();
    wait_for(
        "write --watch writes the latest key",
        Duration::from_secs(INTERVAL_SECONDS * 2),
        || {
            std::fs::read_to_string(&watched)
                .ok()
                .filter(|text| text.contains(&format!("aws_access_key_id = {last}\n")))
        },
    );
    assert!(watcher.is_running(), "the watcher keeps running");
    let mut secrets = cached_secrets(&consumer.cache_dir);
    secrets.push(stack.api_key());
    for text in &stderrs {
        assert_no_secret(text, &secrets);
    }
}

#[test]
fn boto3_follows_compressed_and_early_rotations_fetching_once_per_interval() {
    let interval = BOTO3_INTERVAL_SECONDS.to_string();
    let stack = start_stack(&["--interval-seconds", &interval]);
    let consumer = Consumer::new("boto3", &stack.api(), &stack.api_key());
    let config = consumer.aws_config(&["bob"]);
    let seconds = BOTO3_INTERVAL_SECONDS * 4 + 5;
    let before = stack.api_requests("GET", "/active-key");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/boto3_loop.py");
    let output = clean(python().to_str().expect("utf-8"))
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", consumer.dir.join("none"))
        .args([script, "--profile", "keyrot-bob", "--endpoint-url"])
        .arg(stack.aws_endpoint())
        .args(["--seconds", &seconds.to_string()])
        .args([
            "--early-rotation-at",
            &(BOTO3_INTERVAL_SECONDS + BOTO3_INTERVAL_SECONDS / 2).to_string(),
        ])
        .args(["--secret-id", "keyrot/iam/bob"])
        .output()
        .expect("run boto3_loop.py");
    let fetches = stack.api_requests("GET", "/active-key") - before;
    assert!(
        output.status.success(),
        "boto3 loop failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).expect("summary JSON");
    eprintln!("boto3 summary: {summary}; API key fetches: {fetches}");
    eprintln!("gateway log:\n{}", stack.gateway_log());
    let calls = summary["calls"].as_u64().expect("calls");
    assert!(calls >= 20, "{summary}");
    assert_eq!(summary["failures"], 0, "{summary}");
    assert_eq!(
        summary["arns"].as_array().map(Vec::len),
        Some(1),
        "{summary}"
    );
    assert!(
        summary["arns"][0]
            .as_str()
            .expect("arn")
            .ends_with(":user/bob"),
        "{summary}"
    );
    let keys = summary["access_keys"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        keys >= 3,
        "at least three rotations reached boto3: {summary}"
    );
    // At most one refresh per interval of the run, plus the first fetch and one for the early
    // rotation; each of the many helper runs in between was a cache hit. A refresh is the fetch
    // at `RefreshAfter` and the retries the API asks for when the next rotation is late: it
    // then answers the same key with `RefreshAfter` a tenth of an interval later, so a retry
    // follows the previous fetch by about that much (plus the loop's 0.25 s and a helper run).
    let retry_gap = BOTO3_INTERVAL_SECONDS as f64 / 10.0 + 2.0;
    let times = fetch_times(&stack.gateway_log());
    let refreshes = 1 + times.windows(2).filter(|w| w[1] - w[0] > retry_gap).count();
    let allowed = seconds.div_ceil(BOTO3_INTERVAL_SECONDS) + 1 + 1;
    assert!(
        refreshes <= usize::try_from(allowed).expect("small"),
        "{refreshes} refreshes ({fetches} fetches) for {calls} calls, allowed {allowed}"
    );
    assert!(
        fetches <= 2 * refreshes,
        "at most one retry per refresh: {fetches} fetches, {refreshes} refreshes"
    );
    let mut secrets = cached_secrets(&consumer.cache_dir);
    secrets.push(stack.api_key());
    assert_no_secret(&stderr(&output), &secrets);
}
