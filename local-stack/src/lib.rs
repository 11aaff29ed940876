//! keyrot on this machine, against moto as AWS: the pieces of the `keyrot-local` binary, also
//! used by the benchmark harness (which hosts the functions itself, see `--external-lambda`).

pub mod banner;
pub mod gateway;
pub mod invoke;
pub mod options;
pub mod processes;
pub mod provision;
pub mod runtime_proxy;
pub mod scheduler;
pub mod throttle;
pub mod usage_plans;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("could not start {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} did not become ready on {address} within {seconds} s (its log: {log})")]
    NotReady {
        what: String,
        address: String,
        seconds: u64,
        log: String,
    },
    #[error("{what} exited unexpectedly ({status}); see {log}")]
    Exited {
        what: String,
        status: String,
        log: String,
    },
    #[error("port {port} is already in use: stop what uses it or pass another port (see --help)")]
    PortInUse { port: u16 },
    #[error("invalid option: {0}")]
    Option(String),
    #[error("provisioning failed at {step}: {message}")]
    Provision { step: String, message: String },
}
