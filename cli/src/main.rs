//! `keyrot`: tracing → typed configuration (clap) → AWS clients → the command.

use clap::Parser;
use keyrot_cli::deployment::{self, Overrides};
use keyrot_cli::output::Style;
use keyrot_cli::sdk::{describe_stack, Sdk};
use keyrot_cli::{error_json, exit, run, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    // Diagnostics only, on stderr, and only when asked for (RUST_LOG).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .try_init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("keyrot: cannot start: {error}");
            return ExitCode::from(exit::FAILED);
        }
    };
    runtime.block_on(main_async(cli))
}

async fn main_async(cli: Cli) -> ExitCode {
    let style = if cli.global.json {
        Style { color: false }
    } else {
        Style::detect()
    };
    // Bounded calls: an endpoint that never answers must not hang a cron job.
    let config = keyrot::aws::load_sdk_config()
        .await
        .into_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_attempt_timeout(std::time::Duration::from_secs(60))
                .operation_timeout(std::time::Duration::from_secs(180))
                .build(),
        )
        .build();
    if config.region().is_none() {
        eprintln!("keyrot: no AWS region: set AWS_REGION (or a profile's region)");
        return ExitCode::from(exit::USAGE);
    }
    let sdk = Sdk::new(&config);
    let stack = match describe_stack(&sdk.cloudformation, &cli.global.stack).await {
        Ok(stack) => stack,
        Err(error) => {
            // No CloudFormation (the local stack's moto has none to speak of) or no right
            // to read it: carry on with the fixed names, saying so.
            if !cli.global.json {
                eprintln!(
                    "keyrot: stack {} not readable ({error}); using keyrot's fixed names",
                    cli.global.stack
                );
            }
            None
        }
    };
    let overrides = Overrides {
        rotation_function: cli.global.rotation_function.clone(),
        usage_plan_id: cli.global.usage_plan_id.clone(),
        schedule_group: cli.global.schedule_group.clone(),
        interval_seconds: cli.global.interval_seconds,
        client_secret_readers: cli
            .global
            .client_secret_readers
            .iter()
            .map(|reader| reader.trim().to_owned())
            .filter(|reader| !reader.is_empty())
            .collect(),
        secrets_kms_key: cli.global.secrets_kms_key.clone(),
        eligible_user_path: cli.global.eligible_user_path.clone(),
    };
    let deployment = deployment::discover(&sdk, &cli.global.stack, stack, &overrides).await;
    match run(&sdk, &deployment, &cli, style).await {
        Ok(report) => {
            if cli.global.json {
                println!("{}", report.json);
            } else {
                print!("{}", report.text);
            }
            ExitCode::from(if report.attention {
                exit::ATTENTION
            } else {
                exit::OK
            })
        }
        Err(error) => {
            if cli.global.json {
                println!("{}", error_json(&error));
            }
            eprintln!("keyrot: {error}");
            ExitCode::from(match error {
                keyrot_cli::error::CliError::Usage(_) => exit::USAGE,
                _ => exit::FAILED,
            })
        }
    }
}
