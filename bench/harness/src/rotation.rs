//! Rotation: one full rotation's wall time and AWS calls, rotation-fn's cold start, and many
//! managed users rotated in a row on the local stack.

use crate::measure::{cold_json, cold_start, ColdStart};
use crate::stack::{BenchStack, LocalStack};
use crate::stats::Summary;
use crate::subject::{Running, Spec};
use crate::{Args, BenchError};
use keyrot_integration_tests::fault_proxy::FaultProxy;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const SECRETS: [&str; 2] = ["keyrot/iam/alice", "keyrot/iam/bob"];

async fn rotate(
    stack_aws: &keyrot_local::provision::Aws,
    secret: &str,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    stack_aws
        .secrets
        .rotate_secret()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| {
            BenchError::Setup(format!(
                "RotateSecret {secret}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ))
        })?;
    Ok(started.elapsed())
}

/// Every step of the rotations since `from` answered without error; their function time.
fn steps_time(running: &Running, from: usize) -> Result<Duration, BenchError> {
    let answers = running.runtime.answers();
    let steps = answers.get(from..).unwrap_or_default();
    if steps.len() != 4 || steps.iter().any(|a| !a.ok) {
        return Err(BenchError::Unexpected {
            what: "rotation steps".into(),
            answer: format!(
                "{} steps, errors: {}",
                steps.len(),
                steps.iter().filter(|a| !a.ok).count()
            ),
        });
    }
    Ok(steps
        .iter()
        .map(|a| a.answered.saturating_duration_since(a.delivered))
        .sum())
}

/// One rotation of `secret` by a fresh process of `spec`, which Secrets Manager invokes
/// instead of the resident rotation-fn; the process's cold start.
async fn rotate_with(
    stack: &BenchStack,
    spec: &Spec,
    log: &Path,
    secret: &str,
) -> Result<ColdStart, BenchError> {
    let running = Running::start(spec, log).await?;
    stack.invoke.route("rotation-fn", running.runtime.clone());
    let rotated = rotate(&stack.aws, secret).await;
    stack
        .invoke
        .route("rotation-fn", stack.resident_rotation.runtime.clone());
    let result = rotated.and_then(|_| {
        steps_time(&running, 0)?;
        Ok(cold_start(&running, &running.runtime.answers()[0]))
    });
    running.stop().await;
    result
}

pub async fn measure(stack: &BenchStack, args: &Args) -> Result<Value, BenchError> {
    // Warm: the resident process rotates each secret in turn.
    let resident = &stack.resident_rotation;
    let (mut walls, mut functions) = (Vec::new(), Vec::new());
    for i in 0..args.rotations {
        let before = resident.runtime.answers().len();
        walls.push(rotate(&stack.aws, SECRETS[i % SECRETS.len()]).await?);
        functions.push(steps_time(resident, before)?);
    }
    let peak_rss = resident.peak_rss_kib();

    // Cold: a fresh process takes the next rotation.
    let spec = stack.rust("rotation-fn");
    let log = stack.log("rotation-fn-cold");
    let mut colds = Vec::new();
    for i in 0..args.cold_runs {
        colds.push(rotate_with(stack, &spec, &log, SECRETS[i % SECRETS.len()]).await?);
    }

    // AWS calls of one rotation, counted by a proxy between the function and moto.
    let proxy = FaultProxy::start(stack.aws_endpoint()).await;
    let mut counted = spec.clone();
    counted
        .env
        .push(("AWS_ENDPOINT_URL".into(), proxy.url().to_owned()));
    rotate_with(
        stack,
        &counted,
        &stack.log("rotation-fn-counted"),
        SECRETS[0],
    )
    .await?;
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for call in proxy.calls() {
        *calls.entry(call).or_default() += 1;
    }

    Ok(json!({
        "wall": Summary::of(&walls).to_json(),
        "function_time": Summary::of(&functions).to_json(),
        "cold": cold_json(&colds),
        "peak_rss_mib": peak_rss.map(|k| k as f64 / 1024.0),
        "calls_per_rotation": calls,
    }))
}

/// `users` managed users on the local stack (moto, cargo-lambda's emulator, the release
/// functions), all rotated once in a row, as one scheduled round.
pub async fn throughput(args: &Args) -> Result<Value, BenchError> {
    let users: Vec<String> = (1..=args.users).map(|i| format!("user{i:05}")).collect();
    let options: Vec<String> = [
        "--users",
        &users.join(","),
        "--client-users",
        &users[0],
        "--aws-port",
        "0",
        "--lambda-port",
        "0",
        "--api-port",
        "0",
        "--interval-seconds",
        "86400",
        "--bin-dir",
        &args.bin_dir.display().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let local = LocalStack::start(args, "throughput", &options).await?;
    let aws = keyrot_local::provision::Aws::connect(local.aws_endpoint()).await;
    let secrets = local.secret_ids();
    let started = Instant::now();
    let mut each = Vec::with_capacity(secrets.len());
    let mut failure = None;
    for secret in &secrets {
        match rotate(&aws, secret).await {
            Ok(wall) => each.push(wall),
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let round = started.elapsed();
    let startup = local.startup;
    local.stop().await;
    if let Some(error) = failure {
        return Err(error);
    }
    Ok(json!({
        "users": secrets.len(),
        "startup_s": startup.as_secs_f64(),
        "round_s": round.as_secs_f64(),
        "per_rotation": Summary::of(&each).to_json(),
    }))
}
