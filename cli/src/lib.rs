//! `keyrot`, the operator CLI: the commands behind narrow ports (`cloud::Cloud`), the SDK
//! adapter, the deployment look-up and the output. `main.rs` only wires them.

pub mod clients;
pub mod cloud;
pub mod deployment;
pub mod doctor;
pub mod error;
pub mod names;
pub mod output;
pub mod rotate;
pub mod sdk;
pub mod status;
pub mod users;

use clap::{Args, Parser, Subcommand};
use cloud::Cloud;
use deployment::Deployment;
use error::CliError;
use output::Style;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Exit codes (docs/cli.md).
pub mod exit {
    pub const OK: u8 = 0;
    /// status, doctor, clients list/show: something needs attention.
    pub const ATTENTION: u8 = 1;
    /// Invalid usage (clap's own errors also exit 2).
    pub const USAGE: u8 = 2;
    /// The command failed: AWS refused, something is missing, or it was refused.
    pub const FAILED: u8 = 3;
}

/// What a command produced: the human text, the `--json` document, and whether something
/// needs attention (a non-zero exit).
#[derive(Debug, Clone)]
pub struct Report {
    pub text: String,
    pub json: Value,
    pub attention: bool,
}

impl Report {
    pub fn ok(text: String, json: Value) -> Self {
        Self {
            text,
            json,
            attention: false,
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "keyrot",
    version,
    about = "Operate a keyrot deployment: status, doctor, clients, users, rotate, revoke.",
    long_about = "Operate a keyrot deployment. AWS settings come from the standard chain \
        (AWS_PROFILE, AWS_REGION, credentials) and AWS_ENDPOINT_URL, so the same binary works \
        against a deployment and against the local stack. The deployment is found from the \
        stack's outputs (--stack), or, when there is no such stack, from keyrot's fixed names."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The CloudFormation stack of the deployment.
    #[arg(long, global = true, env = "KEYROT_STACK", default_value = "keyrot")]
    pub stack: String,
    /// Machine-readable output (docs/cli.md).
    #[arg(long, global = true)]
    pub json: bool,
    /// The rotation function (name or ARN), when the stack does not say.
    #[arg(long, global = true, env = "KEYROT_ROTATION_FUNCTION")]
    pub rotation_function: Option<String>,
    /// The clients' usage plan, when the stack does not say.
    #[arg(long, global = true, env = "KEYROT_USAGE_PLAN_ID")]
    pub usage_plan_id: Option<String>,
    /// The rotation schedules' group, when the stack does not say.
    #[arg(long, global = true, env = "KEYROT_SCHEDULE_GROUP")]
    pub schedule_group: Option<String>,
    /// The rotation interval, when the stack does not say (default 600).
    #[arg(long, global = true, env = "KEYROT_ROTATION_INTERVAL_SECONDS")]
    pub interval_seconds: Option<u64>,
    /// Who may read client API key secrets, comma-separated, when the stack does not say
    /// (its ClientSecretReaderArns output): clients add puts this reader list in the policy
    /// of each secret it creates.
    #[arg(
        long,
        global = true,
        env = "KEYROT_CLIENT_SECRET_READER_ARNS",
        value_delimiter = ','
    )]
    pub client_secret_readers: Vec<String>,
    /// The KMS key client secrets are created under, when the stack does not say (its
    /// SecretsKmsKeyArn output).
    #[arg(long, global = true, env = "KEYROT_SECRETS_KMS_KEY_ID")]
    pub secrets_kms_key: Option<String>,
    /// The IAM path of the users keyrot may manage, when the stack does not say (its
    /// EligibleUserPath parameter): users add refuses users outside it.
    #[arg(long, global = true, env = "KEYROT_ELIGIBLE_USER_PATH")]
    pub eligible_user_path: Option<String>,
    /// Concurrent users checked at once (status, doctor).
    #[arg(long, global = true, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// One row per managed user; exit 1 when something needs attention.
    Status {
        /// Only these users.
        users: Vec<String>,
        /// An AWSPENDING older than this is stuck.
        #[arg(long, default_value_t = 120)]
        stuck_after_seconds: u64,
    },
    /// Check the deployment end to end; exit 1 when a check fails.
    Doctor,
    /// The client registry.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// The users registry (the fleet's onboarding).
    #[command(subcommand)]
    Users(UsersCommand),
    /// The clients allowed to read USER, and their CIDRs.
    WhoCanRead { user: String },
    /// A routine rotation within the key lifetime contract.
    Rotate {
        user: String,
        /// Return once RotateSecret accepted it, without waiting for the outcome.
        #[arg(long)]
        no_wait: bool,
        /// Longest wait for the rotation to complete.
        #[arg(long, default_value_t = 90)]
        wait_seconds: u64,
    },
    /// The emergency revoke: delete KEY of USER now, whatever was promised.
    Revoke {
        user: String,
        /// The access key id to kill.
        #[arg(long)]
        key: String,
        /// Why (logged, mailed).
        #[arg(long)]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    /// Create a client everywhere it must exist; prints its API key once.
    Add {
        name: String,
        /// IAM users it may read, comma-separated.
        #[arg(long)]
        users: String,
        /// Its own CIDRs, comma-separated (default: the global allowlist alone).
        #[arg(long, default_value = "")]
        cidrs: String,
        /// Write the API key to this new file (mode 0600) instead of printing it.
        #[arg(long)]
        api_key_file: Option<PathBuf>,
    },
    /// Every client and whether it is usable.
    List,
    /// One client: users, CIDRs, usage key, created.
    Show { name: String },
    /// Change a client's users or CIDRs.
    Set {
        name: String,
        #[arg(long)]
        users: Option<String>,
        /// `--cidrs ''` leaves the global allowlist alone.
        #[arg(long)]
        cidrs: Option<String>,
    },
    /// A new API key; the previous one keeps working for the grace.
    RotateKey {
        name: String,
        /// How long the previous key keeps working.
        #[arg(long, default_value_t = clients::DEFAULT_GRACE_SECONDS)]
        grace_seconds: u64,
        /// Rotate even while the key before is still in its grace (ending it).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        api_key_file: Option<PathBuf>,
    },
    /// Remove a client everywhere (also finishes a half-removed one).
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Register an IAM user: the reconciler onboards it.
    Add { user: String },
    /// Unregister: the reconciler offboards it after the contract's promise.
    Remove { user: String },
    /// Registered, seeded and managed users with their state.
    List,
}

/// Runs one command against `cloud`.
pub async fn run<C: Cloud>(
    cloud: &C,
    deployment: &Deployment,
    cli: &Cli,
    style: Style,
) -> Result<Report, CliError> {
    let json = cli.global.json;
    match &cli.command {
        Command::Status {
            users,
            stuck_after_seconds,
        } => {
            let options = status::StatusOptions {
                users: users.clone(),
                concurrency: usize::from(cli.global.concurrency),
                stuck_after: Duration::from_secs(*stuck_after_seconds),
                json,
            };
            status::status(cloud, deployment, &options, style).await
        }
        Command::Doctor => {
            doctor::doctor(
                cloud,
                deployment,
                usize::from(cli.global.concurrency),
                json,
                style,
            )
            .await
        }
        Command::Users(UsersCommand::Add { user }) => users::add(cloud, deployment, user).await,
        Command::Users(UsersCommand::Remove { user }) => {
            users::remove(cloud, deployment, user).await
        }
        Command::Users(UsersCommand::List) => users::list_report(cloud, deployment, style).await,
        Command::WhoCanRead { user } => clients::who_can_read(cloud, deployment, user).await,
        Command::Clients(command) => match command {
            ClientsCommand::Add {
                name,
                users,
                cidrs,
                api_key_file,
            } => {
                let users = names::user_list(users)?;
                let cidrs = names::cidr_list(cidrs)?;
                names::client(name)?;
                let destination = clients::KeyDestination::open(api_key_file.as_deref())?;
                let request = clients::AddRequest {
                    client: name,
                    users,
                    cidrs,
                    destination,
                };
                clients::add(cloud, deployment, request).await
            }
            ClientsCommand::List => clients::list(cloud, deployment, style).await,
            ClientsCommand::Show { name } => clients::show(cloud, deployment, name).await,
            ClientsCommand::Set { name, users, cidrs } => {
                let users = users.as_deref().map(names::user_list).transpose()?;
                let cidrs = cidrs.as_deref().map(names::cidr_list).transpose()?;
                clients::set(cloud, deployment, name, users, cidrs).await
            }
            ClientsCommand::RotateKey {
                name,
                grace_seconds,
                force,
                api_key_file,
            } => {
                names::client(name)?;
                let destination = clients::KeyDestination::open(api_key_file.as_deref())?;
                clients::rotate_key(
                    cloud,
                    deployment,
                    name,
                    Duration::from_secs(*grace_seconds),
                    *force,
                    destination,
                )
                .await
            }
            ClientsCommand::Remove { name } => clients::remove(cloud, deployment, name).await,
        },
        Command::Rotate {
            user,
            no_wait,
            wait_seconds,
        } => {
            let wait = (!no_wait).then(|| Duration::from_secs(*wait_seconds));
            rotate::rotate(cloud, deployment, user, wait).await
        }
        Command::Revoke {
            user,
            key,
            reason,
            yes,
        } => {
            rotate::revoke(
                cloud,
                deployment,
                rotate::RevokeOptions {
                    user,
                    key,
                    reason,
                    yes: *yes,
                },
            )
            .await
        }
    }
}

/// The `--json` document of a failure.
pub fn error_json(error: &CliError) -> Value {
    serde_json::json!({
        "error": {
            "kind": error.kind(),
            "aws_code": error.aws_code(),
            "message": error.to_string(),
        }
    })
}
