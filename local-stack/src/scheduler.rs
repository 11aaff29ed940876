//! The local stand-ins for what starts rotations on AWS:
//!
//! * the tick: the deployed reconcile schedule, which invokes the fleet function (`fleet-fn`)
//!   with `{"Action":"Reconcile"}` every minute (scaled with a compressed interval); the fleet
//!   onboards and offboards registry users and starts each secret's rotation at its slot;
//! * optionally, Secrets Manager's native rotation windows (`--native-window-seconds`): one
//!   RotateSecret per window at a random offset inside it, out of phase with the tick, as a
//!   `rate()` RotationSchedule does on AWS.
//!
//! Every outcome is counted by source in `scheduler.json` in the state directory: for the tick,
//! the rotations the fleet's runs started, found refused because a rotation was in progress
//! (as AWS refuses RotateSecret then; the moto launcher reproduces that), and failed, from each
//! run's report, which is what the deployment publishes as metrics.

use crate::invoke::{Invocation, Invoker};
use crate::processes::FLEET_FUNCTION;
use crate::provision::Aws;
use crate::LocalError;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What started a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Tick,
    NativeWindow,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tick => "tick",
            Self::NativeWindow => "native_window",
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    accepted: u64,
    refused_in_progress: u64,
    failed: u64,
}

/// Outcome counters, written to a JSON file after every RotateSecret.
#[derive(Clone)]
pub struct Counters {
    counts: Arc<Mutex<BTreeMap<Source, Counts>>>,
    path: PathBuf,
}

impl Counters {
    pub fn new(path: PathBuf) -> Self {
        let counters = Self {
            counts: Arc::default(),
            path,
        };
        counters.write(&BTreeMap::new());
        counters
    }

    fn record(&self, source: Source, outcome: Outcome) {
        let counts = match outcome {
            Outcome::Accepted => Counts {
                accepted: 1,
                ..Counts::default()
            },
            Outcome::RefusedInProgress => Counts {
                refused_in_progress: 1,
                ..Counts::default()
            },
            Outcome::Failed => Counts {
                failed: 1,
                ..Counts::default()
            },
        };
        self.add(source, counts);
    }

    fn add(&self, source: Source, more: Counts) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let entry = counts.entry(source).or_default();
        entry.accepted += more.accepted;
        entry.refused_in_progress += more.refused_in_progress;
        entry.failed += more.failed;
        self.write(&counts);
    }

    fn write(&self, counts: &BTreeMap<Source, Counts>) {
        let document: serde_json::Map<String, serde_json::Value> =
            [Source::Tick, Source::NativeWindow]
                .into_iter()
                .map(|source| {
                    let c = counts.get(&source).copied().unwrap_or_default();
                    (
                        source.as_str().to_owned(),
                        json!({
                            "accepted": c.accepted,
                            "refused_in_progress": c.refused_in_progress,
                            "failed": c.failed,
                        }),
                    )
                })
                .collect();
        // Written whole and renamed, so a reader never sees half a file.
        let temporary = self.path.with_extension("json.tmp");
        let written = std::fs::write(&temporary, serde_json::Value::Object(document).to_string())
            .and_then(|()| std::fs::rename(&temporary, &self.path));
        if let Err(error) = written {
            eprintln!("could not write {}: {error}", self.path.display());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    RefusedInProgress,
    Failed,
}

async fn rotate(aws: &Aws, counters: &Counters, source: Source, secret_id: &str) {
    let result = aws
        .secrets
        .rotate_secret()
        .secret_id(secret_id)
        .send()
        .await;
    let outcome = match result {
        Ok(output) => {
            println!(
                "{} rotation of {secret_id}: new version {}",
                source.as_str(),
                output.version_id.unwrap_or_default()
            );
            Outcome::Accepted
        }
        Err(error) => {
            use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
            let (code, message) = (
                error.code().unwrap_or("no error code"),
                error.message().unwrap_or("no message"),
            );
            // Secrets Manager's answer to RotateSecret during a rotation in progress.
            let in_progress =
                code == "InvalidRequestException" && message.contains("rotation isn't complete");
            println!(
                "{} rotation of {secret_id} refused: {code}: {message}",
                source.as_str()
            );
            if in_progress {
                Outcome::RefusedInProgress
            } else {
                Outcome::Failed
            }
        }
    };
    counters.record(source, outcome);
}

/// One reconcile run of the fleet function, as the deployed schedule invokes it; its report
/// (keyrot's `RunReport`) is counted under `tick`.
pub async fn reconcile_once(
    invoker: &Invoker,
    counters: &Counters,
) -> Result<serde_json::Value, String> {
    match invoker
        .invoke(FLEET_FUNCTION, &json!({"Action": "Reconcile"}))
        .await?
    {
        Invocation::Returned(report) => {
            let count = |field: &str| report[field].as_u64().unwrap_or(0);
            counters.add(
                Source::Tick,
                Counts {
                    accepted: count("RotationsStarted"),
                    refused_in_progress: count("RotationsRefused"),
                    failed: count("Errors"),
                },
            );
            Ok(report)
        }
        Invocation::Failed {
            error_type,
            message,
        } => {
            counters.record(Source::Tick, Outcome::Failed);
            Err(format!("reconcile failed: {error_type}: {message}"))
        }
    }
}

/// The reconcile schedule every `period`, and the native windows of `secret_ids`. Runs until
/// dropped.
pub async fn run(
    invoker: Invoker,
    aws: Arc<Aws>,
    counters: Counters,
    secret_ids: &[String],
    period: Duration,
    native_window: Option<Duration>,
) -> Result<(), LocalError> {
    let mut tasks = tokio::task::JoinSet::new();
    let tick = (invoker, counters.clone());
    tasks.spawn(async move {
        let (invoker, counters) = tick;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // the first tick is immediate; startup just reconciled
        loop {
            ticks.tick().await;
            if let Err(error) = reconcile_once(&invoker, &counters).await {
                println!("{error}");
            }
        }
    });
    if let Some(window) = native_window {
        for secret_id in secret_ids {
            let native = (aws.clone(), counters.clone(), secret_id.clone());
            tasks.spawn(async move {
                let (aws, counters, secret_id) = native;
                loop {
                    let offset = random_fraction_of(window);
                    tokio::time::sleep(offset).await;
                    rotate(&aws, &counters, Source::NativeWindow, &secret_id).await;
                    tokio::time::sleep(window.saturating_sub(offset)).await;
                }
            });
        }
    }
    // The tasks loop forever; this returns only if one of them panicked.
    match tasks.join_next().await {
        Some(Err(error)) => Err(LocalError::Option(format!(
            "scheduler task failed: {error}"
        ))),
        _ => Ok(()),
    }
}

/// A uniformly random point inside `window`.
fn random_fraction_of(window: Duration) -> Duration {
    let mut bytes = [0u8; 8];
    let random = keyrot::random::fill(&mut bytes)
        .map(|()| u64::from_le_bytes(bytes))
        .unwrap_or(u64::MAX / 2);
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(random % millis.max(1))
}
