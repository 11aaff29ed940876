//! The environment the measurements run in: keyrot's local stack (moto provisioned as the
//! template would provision AWS) with the harness as its Lambda service, so every function
//! process it measures is one the harness started.

use crate::invoke_api::InvokeApi;
use crate::subject::{Program, Running, Spec};
use crate::{Args, BenchError};
use clap::Parser;
use keyrot_local::options::Options;
use keyrot_local::processes::function_env;
use keyrot_local::provision::Aws;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The template's registry cache lifetime (the local stack shortens it for demos).
const REGISTRY_TTL_SECONDS: &str = "30";

/// A running `keyrot-local` and what its ready file says.
pub struct LocalStack {
    child: Child,
    pub ready: Value,
    /// From spawn to ready: moto's start plus provisioning (which rotates every secret once).
    pub startup: Duration,
}

impl LocalStack {
    pub async fn start(args: &Args, name: &str, options: &[String]) -> Result<Self, BenchError> {
        let state = args.out_dir.join(name);
        std::fs::create_dir_all(&state)
            .map_err(|e| BenchError::io(format!("creating {}", state.display()), e))?;
        let ready_file = state.join("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let started = Instant::now();
        let mut child = Command::new(&args.local_stack)
            .args(options)
            .arg("--ready-file")
            .arg(&ready_file)
            .arg("--state-dir")
            .arg(&state)
            .arg("--root")
            .arg(&args.root)
            .stdin(Stdio::null())
            .stdout(log_file(&state.join("keyrot-local.log"))?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BenchError::io(format!("starting {}", args.local_stack.display()), e))?;
        let deadline = started + Duration::from_secs(1800);
        loop {
            if let Some(ready) = std::fs::read_to_string(&ready_file)
                .ok()
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            {
                return Ok(Self {
                    child,
                    ready,
                    startup: started.elapsed(),
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Setup(format!(
                    "keyrot-local exited ({status}); see {}",
                    state.display()
                )));
            }
            if Instant::now() > deadline {
                return Err(BenchError::Setup("keyrot-local not ready in 30 min".into()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn aws_endpoint(&self) -> &str {
        self.ready["aws_endpoint"].as_str().unwrap_or_default()
    }

    pub fn secret_ids(&self) -> Vec<String> {
        self.ready["secret_ids"]
            .as_array()
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM lets it stop moto and its functions; SIGKILL would orphan nothing
            // either (PR_SET_PDEATHSIG) but leaves no clean log.
            let _ = Command::new("kill").arg(pid.to_string()).status().await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = self.child.kill().await;
    }
}

pub fn log_file(path: &Path) -> Result<std::fs::File, BenchError> {
    std::fs::File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| BenchError::io(format!("opening {}", path.display()), e))
}

/// The measurement environment: the harness's Invoke API, the local stack using it, and a
/// resident rotation-fn (provisioning rotates every secret once).
pub struct BenchStack {
    pub invoke: InvokeApi,
    pub aws: Aws,
    pub api_key: String,
    pub resident_rotation: Running,
    pub logs: PathBuf,
    functions: FunctionConfig,
    local: LocalStack,
}

impl BenchStack {
    pub async fn start(args: &Args) -> Result<Self, BenchError> {
        let invoke = InvokeApi::start()
            .await
            .map_err(|e| BenchError::io("starting the Invoke API", e))?;
        let aws_port = free_port()?;
        let local_args: Vec<String> = [
            "--aws-port",
            &aws_port.to_string(),
            "--api-port",
            "0",
            "--external-lambda",
            invoke.url(),
            "--interval-seconds",
            "86400",
            "--token-ttl-seconds",
            "900",
            "--throttle-rate",
            "1000000",
            "--throttle-burst",
            "1000000",
        ]
        .map(str::to_owned)
        .to_vec();
        let options = Options::parse_from(
            std::iter::once("keyrot-local".to_owned()).chain(local_args.clone()),
        );
        let aws_endpoint = format!("http://127.0.0.1:{aws_port}");
        let logs = args.out_dir.join("functions");
        std::fs::create_dir_all(&logs)
            .map_err(|e| BenchError::io(format!("creating {}", logs.display()), e))?;
        let functions = FunctionConfig {
            options,
            aws_endpoint,
            bin_dir: args.bin_dir.clone(),
        };
        let resident_rotation = Running::start(
            &functions.rust("rotation-fn"),
            &logs.join("rotation-fn.log"),
        )
        .await?;
        invoke.route("rotation-fn", resident_rotation.runtime.clone());
        let local = LocalStack::start(args, "stack", &local_args).await?;
        let api_key = local.ready["api_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let aws = Aws::connect(&functions.aws_endpoint).await;
        Ok(Self {
            invoke,
            aws,
            api_key,
            resident_rotation,
            logs,
            functions,
            local,
        })
    }

    pub fn aws_endpoint(&self) -> &str {
        &self.functions.aws_endpoint
    }

    /// A release keyrot function, configured as the local stack configures it.
    pub fn rust(&self, function: &str) -> Spec {
        self.functions.rust(function)
    }

    /// The Python baseline of `function`, with the same configuration.
    pub fn python(&self, function: &str, args: &Args, module: &str) -> Spec {
        let mut spec = self.rust(function);
        spec.program = Program::Python {
            python: args.python.clone(),
            dir: args.root.join("bench").join("python"),
            handler: format!("{module}.handler"),
        };
        spec
    }

    /// The hello-world floor, with the environment Lambda gives every function.
    pub fn hello(&self) -> Spec {
        self.functions.rust("hello-fn")
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    pub async fn stop(self) {
        self.resident_rotation.stop().await;
        self.local.stop().await;
    }
}

/// How the harness configures the functions it starts.
struct FunctionConfig {
    options: Options,
    aws_endpoint: String,
    bin_dir: PathBuf,
}

impl FunctionConfig {
    fn rust(&self, function: &str) -> Spec {
        let mut env: Vec<(String, String)> =
            function_env(function, &self.aws_endpoint, &self.options)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        env.push((
            "KEYROT_REGISTRY_TTL_SECONDS".into(),
            REGISTRY_TTL_SECONDS.into(),
        ));
        Spec {
            function: function.to_owned(),
            program: Program::Bootstrap(self.bin_dir.join(function)),
            env,
        }
    }
}

fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| BenchError::io("picking a free port", e))
}
