//! The helper's other modes, its cache under concurrency, and its failures, against one local
//! stack (rotating only when the test says so): twenty AWS CLI calls make one API fetch, ten
//! cold starts at once make one or two, `exec`/`write`/`env` hand out the current key, and each
//! failure gives its own one-line message with nothing secret on stderr.

mod support;

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use support::*;

#[test]
fn modes_cache_concurrency_and_failures() {
    let stack = start_stack(&["--interval-seconds", "3600"]);
    let api_key = stack.api_key();
    let consumer = Consumer::new("modes", &stack.api(), &api_key);
    let mut secrets = vec![api_key.clone()];
    let mut stderrs = Vec::new();
    let fetches = || stack.api_requests("GET", "/active-key");
    let tokens = || stack.api_requests("POST", "/generate-token");

    // Twenty AWS CLI calls within one interval: one token, one key fetch, nineteen cache hits.
    let config = consumer.aws_config(&["alice"]);
    let (fetches_before, tokens_before) = (fetches(), tokens());
    for _ in 0..20 {
        let output = consumer.aws_cli(
            &config,
            &[
                "sts",
                "get-caller-identity",
                "--profile",
                "keyrot-alice",
                "--endpoint-url",
                &stack.aws_endpoint(),
            ],
        );
        assert!(output.status.success(), "aws sts: {}", stderr(&output));
        assert!(stdout(&output).contains(":user/alice"));
        stderrs.push(stderr(&output));
    }
    assert_eq!(fetches() - fetches_before, 1, "20 CLI calls, one key fetch");
    assert_eq!(tokens() - tokens_before, 1, "20 CLI calls, one token");
    let cached = credentials(&consumer.run("alice", &[]));
    secrets.push(
        cached["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );
    assert_eq!(
        cached.as_object().map(|o| o.len()),
        Some(4),
        "Version, AccessKeyId, SecretAccessKey, Expiration only: {cached}"
    );
    assert_eq!(cached["Version"], 1);
    let cache_file = std::fs::read_dir(&consumer.cache_dir)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("a cache file");
    let mode = std::fs::metadata(&cache_file)
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "cache file mode");

    // Ten helpers at once on a cold cache: the lock lets one fetch, the others read its result.
    let cold = Consumer::new("cold", &stack.api(), &api_key);
    let before = fetches();
    let children: Vec<_> = (0..10)
        .map(|_| {
            cold.helper("bob", &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn helper")
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().expect("helper output"))
        .collect();
    let cold_fetches = fetches() - before;
    eprintln!("10 concurrent cold starts made {cold_fetches} key fetch(es)");
    assert!((1..=2).contains(&cold_fetches), "{cold_fetches} fetches");
    let ids: Vec<Value> = outputs
        .iter()
        .map(|o| credentials(o)["AccessKeyId"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one key for all: {ids:?}"
    );
    stderrs.extend(outputs.iter().map(stderr));

    // exec: the child sees the current key (and no session token from elsewhere).
    let output = consumer
        .helper(
            "alice",
            &[
                "exec",
                "--",
                "sh",
                "-c",
                "echo \"$AWS_ACCESS_KEY_ID ${AWS_SESSION_TOKEN:-none}\"; exit 7",
            ],
        )
        .env("AWS_SESSION_TOKEN", "stale")
        .output()
        .expect("exec");
    assert_eq!(output.status.code(), Some(7), "the child's exit status");
    assert_eq!(
        stdout(&output).trim(),
        format!("{} none", cached["AccessKeyId"].as_str().expect("id"))
    );
    stderrs.push(stderr(&output));

    // env: the output can be sourced by a POSIX shell.
    let output = consumer.run("alice", &["env"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let env_file = consumer.dir.join("env.sh");
    std::fs::write(&env_file, &output.stdout).expect("env file");
    let sourced = clean("sh")
        .args([
            "-c",
            ". \"$0\" && echo \"$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY\"",
        ])
        .arg(&env_file)
        .output()
        .expect("sh");
    assert_eq!(
        stdout(&sourced).trim(),
        format!(
            "{}:{}",
            cached["AccessKeyId"].as_str().expect("id"),
            cached["SecretAccessKey"].as_str().expect("secret")
        )
    );

    // write: only its own profile changes, comments and other profiles stay, mode 0600, and
    // the file is replaced (a new inode), never rewritten in place.
    let file = consumer.dir.join("credentials");
    let original = "# team credentials\n[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = keep-me\n\n; written by keyrot-credentials\n[keyrot-alice]\nregion = eu-west-1\naws_access_key_id = AKIAOLD\naws_secret_access_key = old\n\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other # trailing\n";
    std::fs::write(&file, original).expect("credentials file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&file).expect("meta"));
    let output = consumer.run(
        "alice",
        &[
            "write",
            "--profile",
            "keyrot-alice",
            "--file",
            file.to_str().expect("utf-8"),
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    stderrs.push(stderr(&output));
    let written = std::fs::read_to_string(&file).expect("read back");
    let expected = original
        .replace("AKIAOLD", cached["AccessKeyId"].as_str().expect("id"))
        .replace(
            "aws_secret_access_key = old\n",
            &format!(
                "aws_secret_access_key = {}\n",
                cached["SecretAccessKey"].as_str().expect("secret")
            ),
        );
    assert_eq!(written, expected);
    let metadata = std::fs::metadata(&file).expect("meta");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_ne!(
        std::os::unix::fs::MetadataExt::ino(&metadata),
        inode,
        "renamed into place"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&consumer.dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file left");

    // write --watch: a rotation (once the helper expects it) reaches the file. Here the helper
    // expects one only after an hour, so the test checks the first write and that it keeps
    // running; compressed rotations are covered by the AWS tools tests.
    let watched = consumer.dir.join("watched");
    let mut watch = consumer.helper(
        "alice",
        &[
            "write",
            "--watch",
            "--profile",
            "p",
            "--file",
            watched.to_str().expect("utf-8"),
        ],
    );
    watch.stderr(Stdio::null());
    let mut watcher = Daemon::spawn(watch);
    wait_for(
        "the watcher writes",
        std::time::Duration::from_secs(30),
        || {
            std::fs::read_to_string(&watched)
                .ok()
                .filter(|t| t.contains(cached["AccessKeyId"].as_str().unwrap_or("?")))
        },
    );
    assert!(watcher.is_running(), "still watching");
    drop(watcher);

    // Failures, each with its own message.
    let wrong = Consumer::new(
        "wrong",
        &stack.api(),
        "not-the-api-key-of-any-client-at-all-000",
    );
    let output = wrong.run("alice", &[]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).trim(),
        "keyrot-credentials: API key refused (401): check --api-key-file or KEYROT_API_KEY"
    );
    stderrs.push(stderr(&output));
    secrets.push("not-the-api-key-of-any-client-at-all-000".into());

    let output = consumer.run("mallory", &[]);
    assert!(!output.status.success());
    assert_eq!(
        stderr(&output).trim(),
        "keyrot-credentials: client may not read user mallory (403)"
    );
    stderrs.push(stderr(&output));

    std::fs::set_permissions(&consumer.key_file, std::fs::Permissions::from_mode(0o640))
        .expect("chmod");
    let output = consumer.run("alice", &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("is readable by others (mode 640): run chmod 600"));
    stderrs.push(stderr(&output));
    std::fs::set_permissions(&consumer.key_file, std::fs::Permissions::from_mode(0o600))
        .expect("chmod");

    // A corrupt cache is ignored (with a warning), a fresh key fetched and the file rewritten.
    std::fs::write(&cache_file, b"{\"format\":1,\"key\":").expect("corrupt");
    let output = consumer.run("alice", &[]);
    let fresh = credentials(&output);
    assert!(
        stderr(&output).contains("warning: ignoring corrupt cache file"),
        "{}",
        stderr(&output)
    );
    assert_eq!(fresh["AccessKeyId"], cached["AccessKeyId"]);
    stderrs.push(stderr(&output));
    let output = consumer.run("alice", &[]);
    assert!(stderr(&output).is_empty(), "rewritten: {}", stderr(&output));

    // A rotation, then a cache that expects a newer key: the helper fetches again. (Within the
    // interval every key is still promised, so the rotation carried the key forward.)
    rotate(&stack, "keyrot/iam/alice");
    expect_newer_key(&cache_file);
    let fetches = stack.api_requests("GET", "/active-key");
    let rotated = credentials(&consumer.run("alice", &[]));
    assert_eq!(
        stack.api_requests("GET", "/active-key"),
        fetches + 1,
        "fetched again"
    );
    assert_eq!(
        rotated["AccessKeyId"], cached["AccessKeyId"],
        "carried forward"
    );
    secrets.push(
        rotated["SecretAccessKey"]
            .as_str()
            .expect("secret")
            .to_owned(),
    );

    // The API down: a cache still before its Expiration is served with a warning; without a
    // valid cache, one clear error.
    secrets.extend(cached_secrets(&consumer.cache_dir));
    secrets.extend(cached_secrets(&cold.cache_dir));
    let mut stack = stack;
    assert!(stack.interrupt().is_some(), "the stack stops");
    expect_newer_key(&cache_file);
    let output = consumer.run("alice", &[]);
    let served = credentials(&output);
    assert_eq!(served["AccessKeyId"], rotated["AccessKeyId"]);
    assert!(
        stderr(&output).contains("keyrot API unreachable")
            && stderr(&output).contains("serving the cached key, valid until"),
        "{}",
        stderr(&output)
    );
    stderrs.push(stderr(&output));
    let empty = Consumer::new("down", &consumer.api, &api_key);
    let output = empty.run("alice", &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.starts_with("keyrot-credentials: keyrot API unreachable")
            && message.trim().lines().count() == 1,
        "{message}"
    );
    stderrs.push(message);

    for text in &stderrs {
        assert_no_secret(text, &secrets);
    }
}

/// Edits the cache so the helper expects a newer key now (as it will once `RefreshAfter`
/// passes), keeping its `Expiration`: the test cannot wait the stack's hour-long interval.
fn expect_newer_key(cache_file: &std::path::Path) {
    let text = std::fs::read_to_string(cache_file).expect("cache");
    let mut entry: Value = serde_json::from_str(&text).expect("cache JSON");
    let fetched = entry["key"]["fetched_at"].clone();
    entry["key"]["refresh_after"] = fetched;
    std::fs::write(cache_file, entry.to_string()).expect("write cache");
}
