//! `keyrot-local`: all of keyrot on this machine, against moto as AWS.

use clap::Parser;
use keyrot_local::options::Options;
use keyrot_local::{
    banner, gateway, invoke, processes, provision, scheduler, throttle, LocalError,
};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    match run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyrot-local: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), LocalError> {
    let allowed = keyrot::api::source_ip::CidrList::parse_all(
        options.allowed_cidrs.iter().map(String::as_str),
    )
    .map_err(|e| LocalError::Option(e.to_string()))?;
    let api_listener = processes::listen(options.api_port).await?;
    let api_port = api_listener
        .local_addr()
        .map_err(|source| LocalError::Spawn {
            what: "the API listener".into(),
            source,
        })?
        .port();
    let api_url = format!("http://127.0.0.1:{api_port}/{}", gateway::STAGE);
    let mut stack = processes::Stack::start(&options).await?;
    let addresses = stack.addresses.clone();
    let aws = std::sync::Arc::new(provision::Aws::connect(&addresses.aws_endpoint).await);
    let serve = async {
        let provisioned = provision::provision(&aws, &addresses.aws_endpoint, &options).await?;
        let access_log = addresses.state_dir.join("gateway.log");
        let access_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&access_log)
            .map_err(|source| LocalError::Spawn {
                what: format!("gateway log {}", access_log.display()),
                source,
            })?;
        let gateway = std::sync::Arc::new(
            gateway::Gateway::new(
                invoke::Invoker::new(&addresses.lambda_endpoint),
                allowed,
                throttle::Throttle::new(options.throttle_rate, options.throttle_burst),
                provisioned.usage_plans.clone(),
            )
            .with_access_log(access_log),
        );
        let gateway_task = tokio::spawn(gateway.serve(api_listener));
        // The fleet's first run creates the seed users' slot A secrets and rotates them, as
        // the first scheduled run after a deploy does; the second adds slot B.
        let counters = scheduler::Counters::new(addresses.state_dir.join("scheduler.json"));
        let invoker = invoke::Invoker::new(&addresses.lambda_endpoint);
        for run in ["first", "second"] {
            let step = format!("the fleet's {run} reconcile");
            let report = scheduler::reconcile_once(&invoker, &counters)
                .await
                .map_err(|message| LocalError::Provision {
                    step: step.clone(),
                    message,
                })?;
            let onboarded = report["Onboarded"].as_u64().unwrap_or(0);
            if onboarded != options.users.len() as u64 || report["Errors"].as_u64() != Some(0) {
                return Err(LocalError::Provision {
                    step,
                    message: format!("expected every user's slot onboarded, got {report}"),
                });
            }
        }
        banner::print(&options, &addresses, &api_url, &provisioned);
        if let Some(path) = &options.ready_file {
            banner::write_ready_file(path, &addresses, &api_url, &provisioned).map_err(
                |source| LocalError::Spawn {
                    what: format!("ready file {}", path.display()),
                    source,
                },
            )?;
        }
        let result = scheduler::run(
            invoker,
            aws.clone(),
            counters,
            &provisioned.secret_ids,
            options.reconcile_period(),
            options
                .native_window_seconds
                .map(std::time::Duration::from_secs),
        )
        .await;
        gateway_task.abort();
        result
    };
    // Any child dying (a function crashing at start, moto failing) ends the stack with its
    // log named, rather than leaving a request hanging.
    tokio::pin!(serve);
    let mut redeploys = redeploy_signals();
    let outcome = loop {
        tokio::select! {
            result = &mut serve => break result,
            exit = stack.any_exited() => break Err(exit),
            () = shutdown_signal() => {
                eprintln!("keyrot-local: stopping");
                break Ok(());
            }
            Some(()) = redeploys.recv() => match options.redeployed() {
                Ok(deployed) => {
                    if let Err(error) = stack.redeploy(&deployed).await {
                        break Err(error);
                    }
                    println!(
                        "keyrot-local: deployed again, interval {} s",
                        deployed.interval().as_secs()
                    );
                }
                // A bad deploy file leaves the running deployment as it is, as a failed
                // stack update rolls back.
                Err(message) => println!("keyrot-local: deploy refused: {message}"),
            },
        }
    };
    stack.stop().await;
    outcome
}

/// SIGHUP, one message each: deploy again (`--deploy-file`).
fn redeploy_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            if sender.send(()).await.is_err() {
                return;
            }
        }
    });
    #[cfg(not(unix))]
    drop(sender);
    receiver
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
