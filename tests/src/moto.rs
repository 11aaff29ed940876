//! Where the moto server is, and SDK configuration that talks to it.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_smithy_types::retry::RetryConfig;
use std::time::Duration;

/// Set by `scripts/test`, which starts moto on a free port.
pub const MOTO_URL_VARIABLE: &str = "KEYROT_TEST_MOTO_URL";

pub fn moto_url() -> String {
    std::env::var(MOTO_URL_VARIABLE).unwrap_or_else(|_| {
        panic!(
            "{MOTO_URL_VARIABLE} is not set: run the tests with ./scripts/test, which starts moto"
        )
    })
}

/// The SDK configuration `rotation-fn` loads on AWS, pointed at `endpoint`. Retry backoff
/// starts small so throttling tests do not sleep for seconds.
pub async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIAKEYROTTEST",
            "keyrot-test-secret",
            None,
            None,
            "test",
        ))
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(keyrot::aws::MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await
}

/// A moto server of a test's own (tools/moto_server.py with `settings`, such as a version limit
/// the shared server must not have), on a free loopback port; killed when dropped.
pub struct OwnMoto {
    child: std::process::Child,
    pub url: String,
}

impl OwnMoto {
    pub fn start(settings: &[(&str, String)]) -> Self {
        let root = crate::local_stack::workspace_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tools/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(settings.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start tools/moto_server.py (run ./scripts/test, which installs .venv)");
        let mut moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("tools/moto_server.py exited early: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto not listening after 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
