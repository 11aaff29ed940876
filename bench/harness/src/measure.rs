//! Cold starts and warm invocations of one function through its Runtime API.

use crate::runtime_api::Answer;
use crate::subject::{Running, Spec};
use crate::BenchError;
use bytes::Bytes;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);

/// What an answer must look like for a sample to count (a benchmark of an error path by
/// mistake would flatter or slander the function).
pub type Check = fn(&Value) -> bool;

pub fn is_allow(answer: &Value) -> bool {
    keyrot_integration_tests::events::effect(answer) == Some("Allow")
}

pub fn is_deny(answer: &Value) -> bool {
    keyrot_integration_tests::events::effect(answer) == Some("Deny")
}

pub fn is_ok_response(answer: &Value) -> bool {
    answer["statusCode"] == 200
}

pub fn is_anything(_: &Value) -> bool {
    true
}

pub fn checked(label: &str, answer: &Answer, check: Check) -> Result<Value, BenchError> {
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    if answer.ok && check(&body) {
        Ok(body)
    } else {
        Err(BenchError::Unexpected {
            what: label.to_owned(),
            answer: String::from_utf8_lossy(&answer.body)
                .chars()
                .take(500)
                .collect(),
        })
    }
}

/// One cold start: init (spawn to first poll) and total (init plus the first invocation).
#[derive(Debug, Clone, Copy)]
pub struct ColdStart {
    pub init: Duration,
    pub total: Duration,
}

/// Summaries of cold starts: total, init, and the first invocation (total minus init).
pub fn cold_json(samples: &[ColdStart]) -> serde_json::Value {
    let of = |part: fn(&ColdStart) -> Duration| {
        crate::stats::Summary::of(&samples.iter().map(part).collect::<Vec<_>>()).to_json()
    };
    serde_json::json!({
        "total": of(|s| s.total),
        "init": of(|s| s.init),
        "first_invocation": of(|s| s.total.saturating_sub(s.init)),
    })
}

/// Init time of `running` plus the duration of `first`, its first invocation.
pub fn cold_start(running: &Running, first: &Answer) -> ColdStart {
    let first_poll = running.runtime.first_poll().unwrap_or(first.delivered);
    let init = first_poll.saturating_duration_since(running.spawned);
    ColdStart {
        init,
        total: init + first.answered.saturating_duration_since(first.delivered),
    }
}

/// `runs` fresh processes of `spec`, each answering `event` once.
pub async fn cold_starts(
    label: &str,
    spec: &Spec,
    event: &Value,
    check: Check,
    runs: usize,
    log: &Path,
) -> Result<Vec<ColdStart>, BenchError> {
    let event = Bytes::from(event.to_string());
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut running = Running::start(spec, log).await?;
        let answer = running.invoke(event.clone(), INVOKE_TIMEOUT).await;
        let sample = answer.and_then(|answer| {
            checked(label, &answer, check)?;
            Ok(cold_start(&running, &answer))
        });
        running.stop().await;
        samples.push(sample?);
    }
    Ok(samples)
}

/// `warmup` unmeasured then `runs` measured invocations of a warm process: time from queueing
/// the event to its response arriving at the Runtime API.
pub async fn warm(
    label: &str,
    running: &mut Running,
    event: &Value,
    check: Check,
    warmup: usize,
    runs: usize,
) -> Result<Vec<Duration>, BenchError> {
    let event = Bytes::from(event.to_string());
    let mut samples = Vec::with_capacity(runs);
    for i in 0..warmup + runs {
        let queued = Instant::now();
        let answer = running.invoke(event.clone(), INVOKE_TIMEOUT).await?;
        checked(label, &answer, check)?;
        if i >= warmup {
            samples.push(answer.answered.saturating_duration_since(queued));
        }
    }
    Ok(samples)
}

/// One invocation, its checked answer.
pub async fn once(
    label: &str,
    running: &mut Running,
    event: &Value,
    check: Check,
) -> Result<Value, BenchError> {
    let answer = running
        .invoke(Bytes::from(event.to_string()), INVOKE_TIMEOUT)
        .await?;
    checked(label, &answer, check)
}
