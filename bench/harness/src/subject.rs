//! A function process under measurement: spawned with its own Runtime API, watched through
//! `/proc`, stopped at the end.

use crate::runtime_api::{Answer, RuntimeApi};
use crate::BenchError;
use bytes::Bytes;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, Clone)]
pub enum Program {
    /// A Lambda `bootstrap` binary.
    Bootstrap(PathBuf),
    /// A Python handler under awslambdaric, as Lambda's Python images run it.
    Python {
        python: PathBuf,
        dir: PathBuf,
        handler: String,
    },
}

/// What to run and with which environment.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The function name it runs as (`AWS_LAMBDA_FUNCTION_NAME`).
    pub function: String,
    pub program: Program,
    pub env: Vec<(String, String)>,
}

pub struct Running {
    pub runtime: Arc<RuntimeApi>,
    pub spawned: Instant,
    child: Child,
    label: String,
    log: PathBuf,
}

impl Running {
    /// Starts the Runtime API, then the process; `spawned` is taken just before the spawn.
    pub async fn start(spec: &Spec, log: &Path) -> Result<Self, BenchError> {
        let runtime = Arc::new(
            RuntimeApi::start(&spec.function)
                .await
                .map_err(|e| BenchError::io("starting a runtime API", e))?,
        );
        let mut command = match &spec.program {
            Program::Bootstrap(path) => Command::new(path),
            Program::Python {
                python,
                dir,
                handler,
            } => {
                let mut command = Command::new(python);
                command
                    .args(["-m", "awslambdaric", handler])
                    .current_dir(dir);
                command
            }
        };
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| BenchError::io(format!("opening {}", log.display()), e))?;
        let file_err = file
            .try_clone()
            .map_err(|e| BenchError::io("log file", e))?;
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_err)
            .kill_on_drop(true);
        let spawned = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", spec.function), e))?;
        Ok(Self {
            runtime,
            spawned,
            child,
            label: spec.function.clone(),
            log: log.to_owned(),
        })
    }

    /// Queues `event` and waits for the answer, failing at once if the process exits.
    pub async fn invoke(&mut self, event: Bytes, timeout: Duration) -> Result<Answer, BenchError> {
        let label = self.label.clone();
        tokio::select! {
            answer = self.runtime.invoke(event, timeout) => {
                answer.map_err(|e| BenchError::Invoke(label, e.to_string()))
            }
            status = self.child.wait() => Err(BenchError::Invoke(
                label,
                format!(
                    "the process exited ({}); see {}",
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    self.log.display()
                ),
            )),
        }
    }

    /// Peak resident set (`VmHWM`) of the process so far, in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
