//! The whole local stack (`keyrot-local`) as a test fixture: started on free ports with a
//! ready file, stopped with Ctrl-C (SIGKILL after 15 s) when dropped. Used by the end-to-end
//! test and by the `keyrot-credentials` tests. Needs the binaries built
//! (`cargo build --workspace --bins`, which `./scripts/test` runs first) and `.venv`.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct LocalStack {
    child: Child,
    /// The ready file: `api_url`, `api_key`, `aws_endpoint`, `lambda_endpoint`, `secret_ids`.
    pub ready: Value,
    pub state_dir: PathBuf,
    stdout_log: PathBuf,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.interrupt();
        }
    }
}

/// The checkout this crate is in (where `.venv`, `tools/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory of the workspace's binaries, seen from a test executable
/// (`target/debug/deps/<test>` → `target/debug`).
pub fn bin_dir_of_test() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

impl LocalStack {
    /// Starts `keyrot-local` from `bin_dir` (which also holds the function binaries) with the
    /// `extra` options, and waits for its ready file.
    pub fn start(bin_dir: &Path, extra: &[&str]) -> Self {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let root = workspace_root();
        for binary in ["keyrot-local", "rotation-fn", "authorizer-fn", "api-fn"] {
            assert!(
                bin_dir.join(binary).exists(),
                "{binary} is not built: run ./scripts/test (it runs cargo build --bins first)"
            );
        }
        let state_dir = std::env::temp_dir().join(format!(
            "keyrot-stack-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).expect("state dir");
        let ready_file = state_dir.join("ready.json");
        let stdout_log = state_dir.join("stack.out");
        // Free ports, unless the caller names one (`--aws-port`, to put a proxy in front).
        let ports: Vec<&str> = ["--aws-port", "--lambda-port", "--api-port"]
            .into_iter()
            .filter(|flag| !extra.contains(flag))
            .flat_map(|flag| [flag, "0"])
            .collect();
        let child = Command::new(bin_dir.join("keyrot-local"))
            .args(&ports)
            .args([
                "--root",
                root.to_str().expect("utf-8 path"),
                "--bin-dir",
                bin_dir.to_str().expect("utf-8 path"),
            ])
            .args(["--state-dir", state_dir.to_str().expect("utf-8 path")])
            .args(["--ready-file", ready_file.to_str().expect("utf-8 path")])
            .args([
                "--deploy-file",
                state_dir.join("deploy.json").to_str().expect("utf-8 path"),
            ])
            .args(extra)
            .stdout(std::fs::File::create(&stdout_log).expect("stdout log"))
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start keyrot-local");
        let mut stack = Self {
            child,
            ready: Value::Null,
            state_dir,
            stdout_log,
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready_file) {
                if let Ok(ready) = serde_json::from_str::<Value>(&text) {
                    stack.ready = ready;
                    eprintln!("local stack ready in {:?}", started.elapsed());
                    return stack;
                }
            }
            if let Ok(Some(status)) = stack.child.try_wait() {
                panic!(
                    "keyrot-local exited early ({status}); logs in {}",
                    stack.state_dir.display()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "stack not ready after 180 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `program` (the `keyrot` CLI) set up as an operator runs it against this stack: the AWS
    /// endpoint, the Lambda emulator for the emergency revoke, and moto's fixed credentials.
    pub fn operator_command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env("AWS_ENDPOINT_URL", self.aws_endpoint())
            .env(
                "AWS_ENDPOINT_URL_LAMBDA",
                self.ready["lambda_endpoint"]
                    .as_str()
                    .expect("lambda endpoint"),
            )
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE");
        command
    }

    /// Deploys again with `settings` (e.g. `{"interval_seconds": 4}`): the functions restart
    /// with them, as after a stack update. Returns once keyrot-local has been told.
    pub fn redeploy(&self, settings: &Value) {
        std::fs::write(self.state_dir.join("deploy.json"), settings.to_string())
            .expect("deploy file");
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success(), "SIGHUP to keyrot-local");
    }

    /// Ctrl-C, as a user stops it; falls back to SIGKILL after 15 s.
    pub fn interrupt(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn api(&self) -> String {
        self.ready["api_url"].as_str().expect("api url").to_owned()
    }

    pub fn api_key(&self) -> String {
        self.ready["api_key"].as_str().expect("api key").to_owned()
    }

    pub fn aws_endpoint(&self) -> String {
        self.ready["aws_endpoint"]
            .as_str()
            .expect("aws endpoint")
            .to_owned()
    }

    pub async fn aws(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(self.aws_endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
            .load()
            .await
    }

    /// Every log of the run, by file: the functions', moto's, the Lambda emulator's and the
    /// gateway's access log.
    pub fn logs(&self) -> Vec<(String, String)> {
        std::fs::read_dir(&self.state_dir)
            .expect("state dir")
            .flatten()
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "log"))
            .map(|entry| {
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read_to_string(entry.path()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Runs the pinned AWS CLI (`.venv`) against the stack's moto, as the README's steps do;
    /// returns its standard output.
    pub fn aws_cli(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(workspace_root().join(".venv/bin/aws"))
            .args(["--endpoint-url", &self.aws_endpoint()])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run .venv/bin/aws (./scripts/test installs it)");
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// What the stack printed to its console (the banner shows the API key on purpose).
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.stdout_log).unwrap_or_default()
    }

    /// The local gateway's access log: `unix-time method path status` per request.
    pub fn gateway_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("gateway.log")).unwrap_or_default()
    }

    /// How many requests for `method` `resource` (e.g. `GET`, `/active-key`) reached the local
    /// API gateway so far, whatever their answer, from its access log.
    pub fn api_requests(&self, method: &str, resource: &str) -> usize {
        let wanted = format!(" {method} /v1{resource} ");
        self.gateway_log()
            .lines()
            .filter(|line| line.contains(&wanted))
            .count()
    }
}
