//! The processes of the local stack: moto (AWS), the Lambda Runtime/Invoke API emulator and
//! the real function binaries. All are children of this process and stop with it.

use crate::options::Options;
use crate::runtime_proxy::RuntimeProxy;
use crate::LocalError;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// Functions served by the local Lambda emulator: (function name, binary). The fleet function
/// is the rotation function's program with the fleet's settings, as the template deploys it
/// (built a second time under its own name: the emulator serves functions by binary name).
pub const FUNCTIONS: &[(&str, &str)] = &[
    ("rotation-fn", "rotation-fn"),
    (FLEET_FUNCTION, "fleet-fn"),
    ("authorizer-fn", "authorizer-fn"),
    ("api-fn", "api-fn"),
];
pub const FLEET_FUNCTION: &str = "fleet-fn";

/// Token issuer and audience of the local deployment.
pub const LOCAL_ISSUER: &str = "urn:keyrot:local";
pub const LOCAL_AUDIENCE: &str = "urn:keyrot:local:api";

/// Each function's configuration, as the template sets it.
/// The environment a function gets (as the template's function settings), apart from
/// `AWS_LAMBDA_RUNTIME_API`: Lambda's own variables, AWS access to moto, and keyrot's settings.
pub fn function_env(
    function: &str,
    aws_endpoint: &str,
    options: &Options,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_REGION", LOCAL_REGION.to_owned()),
        ("AWS_DEFAULT_REGION", LOCAL_REGION.to_owned()),
        ("AWS_ENDPOINT_URL", aws_endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_ACCESS_KEY.to_owned()),
    ];
    env.extend(keyrot_env(function, options));
    env
}

fn keyrot_env(function: &str, options: &Options) -> Vec<(&'static str, String)> {
    let token = [
        ("KEYROT_TOKEN_ISSUER", LOCAL_ISSUER.to_owned()),
        ("KEYROT_TOKEN_AUDIENCE", LOCAL_AUDIENCE.to_owned()),
    ];
    match function {
        // moto accepts new keys at once: keep the propagation wait short, unless the stack
        // delays STS as AWS does (then the template's settings).
        "rotation-fn" => vec![
            (
                "KEYROT_VERIFY_INITIAL_DELAY_MS",
                if options.sts_acceptance_delay_seconds > 0.0 { "1000" } else { "100" }.to_owned(),
            ),
            (
                "KEYROT_VERIFY_MAX_WAIT_MS",
                if options.sts_acceptance_delay_seconds > 0.0 { "60000" } else { "2000" }
                    .to_owned(),
            ),
            interval_seconds(options),
            (
                "KEYROT_VERSION_RETENTION_SECONDS",
                options.version_retention().as_secs().to_string(),
            ),
            // moto's own limit, when the stack sets one (none: AWS's quota, which moto never
            // reaches in a run).
            (
                "KEYROT_VERSION_LIMIT",
                options
                    .max_versions
                    .unwrap_or(keyrot::rotation::VERSION_LIMIT as u32)
                    .to_string(),
            ),
        ],
        // The template's FleetFunction settings; moto enforces no resource policy, the readers
        // only have to be well formed.
        FLEET_FUNCTION => vec![
            interval_seconds(options),
            (
                "KEYROT_ROTATION_FUNCTION_ARN",
                crate::provision::ROTATION_FUNCTION_ARN.to_owned(),
            ),
            ("KEYROT_SEED_USERS", options.users.join(",")),
            (
                "KEYROT_SECRET_READER_ARNS",
                "arn:aws:iam::123456789012:role/keyrot-api,arn:aws:iam::123456789012:role/keyrot-rotation"
                    .to_owned(),
            ),
            // The template's EligibleUserPath: the local users are at the root path.
            ("KEYROT_ELIGIBLE_USER_PATH", "/".to_owned()),
            (
                "KEYROT_FLEET_RUN_SECONDS",
                options.reconcile_period().as_secs().to_string(),
            ),
            (
                "KEYROT_IAM_WRITES_PER_SECOND",
                options.iam_writes_per_second.to_string(),
            ),
            (
                "KEYROT_SECRETS_WRITES_PER_SECOND",
                options.secrets_writes_per_second.to_string(),
            ),
        ],
        "authorizer-fn" => {
            let mut env = token.to_vec();
            env.push(("KEYROT_ALLOWED_CIDRS", options.allowed_cidrs.join(",")));
            env.push(("KEYROT_REGISTRY_TTL_SECONDS", "5".to_owned()));
            env
        }
        "api-fn" => {
            // api-fn checks the caller itself, with the authorizer's settings.
            let mut env = token.to_vec();
            env.push(("KEYROT_ALLOWED_CIDRS", options.allowed_cidrs.join(",")));
            env.push(("KEYROT_REGISTRY_TTL_SECONDS", "5".to_owned()));
            env.push((
                "KEYROT_TOKEN_TTL_SECONDS",
                options.token_ttl_seconds.to_string(),
            ));
            env.push(interval_seconds(options));
            env
        }
        _ => Vec::new(),
    }
}

/// The interval both rotation-fn (which keeps superseded keys for it) and api-fn (which
/// promises keys for it) must agree on; in seconds for the compressed local time.
fn interval_seconds(options: &Options) -> (&'static str, String) {
    (
        "KEYROT_ROTATION_INTERVAL_SECONDS",
        options.interval().as_secs().to_string(),
    )
}

/// Credentials moto accepts; not a secret.
pub const LOCAL_ACCESS_KEY_ID: &str = "test";
pub const LOCAL_SECRET_ACCESS_KEY: &str = "test";
pub const LOCAL_REGION: &str = "us-east-1";

struct Managed {
    name: String,
    log: PathBuf,
    child: Child,
    /// A function process's Runtime API proxy (a deploy drains it before the stop).
    runtime: Option<RuntimeProxy>,
}

/// Where the stack's services listen.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub aws_endpoint: String,
    pub lambda_endpoint: String,
    pub state_dir: PathBuf,
}

/// Binds a listener on `port` (0: any free one), or says the port is taken.
pub async fn listen(port: u16) -> Result<TcpListener, LocalError> {
    TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|_| LocalError::PortInUse { port })
}

pub struct Stack {
    pub addresses: Addresses,
    children: Vec<Managed>,
    /// The Lambda emulator's port; `None` when an external Invoke API hosts the functions.
    lambda_port: Option<u16>,
    /// Function processes a deploy replaced, finishing their last invocation.
    retiring: Vec<tokio::task::JoinHandle<()>>,
}

impl Stack {
    pub async fn start(options: &Options) -> Result<Self, LocalError> {
        let state_dir = options.state_dir();
        std::fs::create_dir_all(&state_dir).map_err(|source| LocalError::Spawn {
            what: format!("state directory {}", state_dir.display()),
            source,
        })?;
        let aws_port = reserve_port(options.aws_port).await?;
        // With an external Invoke API (the benchmark harness), only moto runs here.
        let (lambda_port, lambda_endpoint) = match &options.external_lambda {
            Some(url) => (None, url.trim_end_matches('/').to_owned()),
            None => {
                let port = reserve_port(options.lambda_port).await?;
                (Some(port), format!("http://127.0.0.1:{port}"))
            }
        };
        let mut stack = Self {
            addresses: Addresses {
                aws_endpoint: format!("http://127.0.0.1:{aws_port}"),
                lambda_endpoint,
                state_dir,
            },
            children: Vec::new(),
            lambda_port: None,
            retiring: Vec::new(),
        };
        let venv_bin = options.root.join(".venv").join("bin");

        let mut moto = Command::new(venv_bin.join("python"));
        moto.arg(options.root.join("tools").join("moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &aws_port.to_string()])
            .env(
                "KEYROT_ROTATION_INVOKE_URL",
                &stack.addresses.lambda_endpoint,
            )
            .env(
                "KEYROT_MOTO_MAX_VERSIONS",
                options
                    .max_versions
                    .map(|n| n.to_string())
                    .unwrap_or_default(),
            )
            .env(
                "KEYROT_MOTO_VERSION_RETENTION_SECONDS",
                options.version_retention().as_secs().to_string(),
            )
            .env(
                "KEYROT_MOTO_ROTATION_RETRY_SECONDS",
                options.rotation_retry().as_secs_f64().to_string(),
            )
            .env(
                "KEYROT_MOTO_STS_ACCEPTANCE_DELAY_SECONDS",
                options.sts_acceptance_delay_seconds.to_string(),
            );
        stack.spawn("moto", moto, None)?;

        let Some(lambda_port) = lambda_port else {
            stack.wait_ready("moto", aws_port).await?;
            return Ok(stack);
        };
        let mut lambda = Command::new(venv_bin.join("cargo-lambda"));
        lambda
            .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
            .args(["-A", "127.0.0.1", "-P", &lambda_port.to_string()])
            .current_dir(&options.root)
            .env("PATH", path_with(&venv_bin));
        stack.spawn("lambda-emulator", lambda, None)?;

        stack.wait_ready("moto", aws_port).await?;
        stack.wait_ready("lambda-emulator", lambda_port).await?;
        stack.lambda_port = Some(lambda_port);
        stack.spawn_functions(options).await?;
        Ok(stack)
    }

    /// The functions' processes, each polling its own Runtime API at the Lambda emulator.
    async fn spawn_functions(&mut self, options: &Options) -> Result<(), LocalError> {
        let Some(lambda_port) = self.lambda_port else {
            return Ok(());
        };
        for (function, binary) in FUNCTIONS {
            let runtime = RuntimeProxy::start(&format!("http://127.0.0.1:{lambda_port}"))
                .await
                .map_err(|source| LocalError::Spawn {
                    what: format!("{function}'s Runtime API proxy"),
                    source,
                })?;
            let mut command = Command::new(options.bin_dir.join(binary));
            command
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env(
                    "AWS_LAMBDA_RUNTIME_API",
                    format!("http://{}/.rt/{function}", runtime.address),
                )
                .envs(function_env(
                    function,
                    options
                        .functions_aws_endpoint
                        .as_deref()
                        .unwrap_or(&self.addresses.aws_endpoint),
                    options,
                ));
            let log = self.addresses.state_dir.join("functions.log");
            self.spawn(function, command, Some(log))?;
            if let Some(managed) = self.children.last_mut() {
                managed.runtime = Some(runtime);
            }
        }
        Ok(())
    }

    /// A deploy: the functions start again with `options` (new settings, as CloudFormation
    /// updating their configuration makes Lambda start new instances). The new instances
    /// poll first; each old one finishes the invocation it holds, takes no new one, and
    /// stops (after at most 30 s of waiting for an invocation it was already waiting for).
    pub async fn redeploy(&mut self, options: &Options) -> Result<(), LocalError> {
        const PATIENCE: Duration = Duration::from_secs(30);
        let function_names: Vec<&str> = FUNCTIONS.iter().map(|(name, _)| *name).collect();
        let (old, kept): (Vec<Managed>, Vec<Managed>) = self
            .children
            .drain(..)
            .partition(|managed| function_names.contains(&managed.name.as_str()));
        self.children = kept;
        self.spawn_functions(options).await?;
        for mut managed in old {
            self.retiring.push(tokio::spawn(async move {
                if let Some(runtime) = &managed.runtime {
                    runtime.drain(PATIENCE).await;
                }
                let _ = managed.child.start_kill();
                let _ = managed.child.wait().await;
            }));
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        log: Option<PathBuf>,
    ) -> Result<(), LocalError> {
        let log = log.unwrap_or_else(|| self.addresses.state_dir.join(format!("{name}.log")));
        let spawn_error = |source| LocalError::Spawn {
            what: name.to_owned(),
            source,
        };
        let file = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(spawn_error)?;
        let file_err = file.try_clone().map_err(spawn_error)?;
        stop_with_parent(&mut command);
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file_err)
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        self.children.push(Managed {
            name: name.to_owned(),
            log,
            child,
            runtime: None,
        });
        Ok(())
    }

    async fn wait_ready(&mut self, name: &str, port: u16) -> Result<(), LocalError> {
        const SECONDS: u64 = 60;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(SECONDS);
        while tokio::time::Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(());
            }
            if let Some(exit) = self.exited() {
                return Err(exit);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(LocalError::NotReady {
            what: name.to_owned(),
            address: format!("127.0.0.1:{port}"),
            seconds: SECONDS,
            log: self.log_of(name),
        })
    }

    fn log_of(&self, name: &str) -> String {
        self.children
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.log.display().to_string())
            .unwrap_or_default()
    }

    fn exited(&mut self) -> Option<LocalError> {
        self.children
            .iter_mut()
            .find_map(|managed| match managed.child.try_wait() {
                Ok(Some(status)) => Some(LocalError::Exited {
                    what: managed.name.clone(),
                    status: status.to_string(),
                    log: managed.log.display().to_string(),
                }),
                _ => None,
            })
    }

    /// Resolves when any child exits: the stack is broken then.
    pub async fn any_exited(&mut self) -> LocalError {
        loop {
            if let Some(exit) = self.exited() {
                return exit;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn stop(&mut self) {
        for retiring in self.retiring.drain(..) {
            retiring.abort();
        }
        for managed in self.children.iter_mut().rev() {
            let _ = managed.child.start_kill();
            let _ = managed.child.wait().await;
        }
        self.children.clear();
    }
}

/// Has the kernel stop the child if this process dies without cleaning up (SIGKILL, crash),
/// so a stack never leaves moto or a function running.
#[cfg(target_os = "linux")]
fn stop_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn stop_with_parent(_command: &mut Command) {}

/// The port to use: `requested`, checked free, or any free one for 0.
async fn reserve_port(requested: u16) -> Result<u16, LocalError> {
    match TcpListener::bind(("127.0.0.1", requested)).await {
        Ok(listener) => listener
            .local_addr()
            .map(|address| address.port())
            .map_err(|source| LocalError::Spawn {
                what: "a port check".into(),
                source,
            }),
        Err(_) => Err(LocalError::PortInUse { port: requested }),
    }
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    if let Some(existing) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).unwrap_or_default()
}
