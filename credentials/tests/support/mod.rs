//! What the `keyrot-credentials` tests share: the built helper run against a local stack with
//! a private API key file and its own cache directory, the real AWS CLI and Python from
//! `.venv`, and the check that nothing secret reaches stderr.

#![allow(dead_code)] // each test file uses its own part

use keyrot_integration_tests::local_stack::{bin_dir_of_test, workspace_root, LocalStack};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const HELPER: &str = env!("CARGO_BIN_EXE_keyrot-credentials");

pub fn start_stack(extra: &[&str]) -> LocalStack {
    LocalStack::start(&bin_dir_of_test(), extra)
}

/// A scratch directory of its own for each call.
pub fn scratch(name: &str) -> PathBuf {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "keyrot-cred-{name}-{}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// One consumer: an API URL, a key file (0600) and a cache directory.
pub struct Consumer {
    pub dir: PathBuf,
    pub api: String,
    pub key_file: PathBuf,
    pub cache_dir: PathBuf,
}

impl Consumer {
    pub fn new(name: &str, api: &str, api_key: &str) -> Self {
        let dir = scratch(name);
        let key_file = dir.join("api-key");
        std::fs::write(&key_file, api_key).expect("key file");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        Self {
            cache_dir: dir.join("cache"),
            key_file,
            api: api.to_owned(),
            dir,
        }
    }

    /// The helper's own flags for `user`, as a `credential_process` line would hold them.
    pub fn flags(&self, user: &str) -> Vec<String> {
        vec![
            "--api".into(),
            self.api.clone(),
            "--user".into(),
            user.into(),
            "--api-key-file".into(),
            self.key_file.display().to_string(),
            "--cache-dir".into(),
            self.cache_dir.display().to_string(),
        ]
    }

    /// The helper for `user`, in a clean environment (no AWS or KEYROT variables from the
    /// test's own environment), followed by `args`.
    pub fn helper(&self, user: &str, args: &[&str]) -> Command {
        let mut command = clean(HELPER);
        command.args(self.flags(user)).args(args);
        command
    }

    pub fn run(&self, user: &str, args: &[&str]) -> Output {
        self.helper(user, args)
            .output()
            .expect("run keyrot-credentials")
    }

    /// `~/.aws/config` with a `keyrot-<user>` profile for each user, whose credential_process
    /// is the built helper; returns its path.
    pub fn aws_config(&self, users: &[&str]) -> PathBuf {
        let mut text = String::new();
        for user in users {
            text.push_str(&format!(
                "[profile keyrot-{user}]\ncredential_process = {HELPER} {}\nregion = us-east-1\n\n",
                self.flags(user).join(" ")
            ));
        }
        let path = self.dir.join("aws-config");
        std::fs::write(&path, text).expect("aws config");
        path
    }

    /// The real AWS CLI from `.venv`, using only `config` (no credentials file, no env keys).
    pub fn aws_cli(&self, config: &Path, args: &[&str]) -> Output {
        let aws = workspace_root().join(".venv").join("bin").join("aws");
        assert!(
            aws.exists(),
            "{} missing: run ./scripts/test",
            aws.display()
        );
        let mut command = clean(aws.to_str().expect("utf-8"));
        command
            .env("AWS_CONFIG_FILE", config)
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-credentials"),
            )
            .args(args);
        command.output().expect("run aws")
    }
}

/// `program` with an environment holding only PATH and a scratch HOME.
pub fn clean(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch("home"))
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    command
}

pub fn python() -> PathBuf {
    let python = workspace_root().join(".venv").join("bin").join("python");
    assert!(
        python.exists(),
        "{} missing: run ./scripts/test",
        python.display()
    );
    python
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The credential_process JSON the helper printed, after checking it succeeded.
pub fn credentials(output: &Output) -> Value {
    assert!(output.status.success(), "helper failed: {}", stderr(output));
    serde_json::from_slice(&output.stdout).expect("stdout is the credential_process JSON")
}

/// Nothing secret on stderr: the API key, and every secret access key or token in `secrets`.
pub fn assert_no_secret(stderr: &str, secrets: &[String]) {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        assert!(
            !stderr.contains(secret.as_str()),
            "a secret reached stderr: {stderr}"
        );
    }
}

/// Every token and secret access key in the cache files under `dir` (so tests can check
/// none of them leaked).
pub fn cached_secrets(dir: &Path) -> Vec<String> {
    let mut secrets = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        for pointer in ["/key/secret_access_key", "/token/value"] {
            if let Some(secret) = value.pointer(pointer).and_then(Value::as_str) {
                secrets.push(secret.to_owned());
            }
        }
    }
    secrets
}

/// Polls `check` every 500 ms until it returns `Some`, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `RotateSecret` on moto through the real AWS CLI (moto's launcher runs the real rotation
/// function for it). A rotation the schedule is running at that moment makes it refuse, as AWS
/// does; the operator's retry is bounded.
pub fn rotate(stack: &LocalStack, secret_id: &str) {
    let aws = workspace_root().join(".venv").join("bin").join("aws");
    let mut refusals = Vec::new();
    for _ in 0..20 {
        let output = clean(aws.to_str().expect("utf-8"))
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .args(["--endpoint-url", &stack.aws_endpoint()])
            .args(["secretsmanager", "rotate-secret", "--secret-id", secret_id])
            .output()
            .expect("aws secretsmanager rotate-secret");
        if output.status.success() {
            return;
        }
        let message = stderr(&output);
        assert!(
            message.contains("InvalidRequestException"),
            "rotate: {message}"
        );
        refusals.push(message);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("RotateSecret refused 20 times: {refusals:?}");
}

/// A long-running helper (`write --watch`) that is killed when the test ends, even by a panic.
pub struct Daemon(pub std::process::Child);

impl Daemon {
    pub fn spawn(mut command: Command) -> Self {
        Self(command.spawn().expect("spawn daemon"))
    }

    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
