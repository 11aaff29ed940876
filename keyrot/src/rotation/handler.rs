//! The Lambda entry point of a rotation: parse, run, log the decision.

use super::{RotationEngine, RotationError, RotationRequest, Rotator, SecretStore};
use crate::metrics::{self, Unit};
use crate::notify::{FailureNotifier, FailureReport};
use lambda_runtime::LambdaEvent;
use std::time::Instant;
use tracing::{error, info, info_span, warn, Instrument};

/// Runs one rotation step for a raw Secrets Manager event. The event is taken as JSON so a
/// malformed one yields a [`RotationError::MalformedEvent`] naming what is wrong.
pub async fn handle_rotation_event<S: SecretStore, R: Rotator, N: FailureNotifier>(
    engine: &RotationEngine<S, R>,
    notifier: &N,
    event: LambdaEvent<serde_json::Value>,
) -> Result<(), RotationError> {
    let request_id = event.context.request_id;
    let request = match RotationRequest::from_event(event.payload) {
        Ok(request) => request,
        Err(error) => {
            warn!(request_id = %request_id, error_code = error.code(), error = %error, "rejected rotation event");
            return Err(error);
        }
    };
    let span = info_span!(
        "rotation",
        request_id = %request_id,
        kind = engine.rotator().kind(),
        step = request.step.as_str(),
        secret_id = %request.secret_id,
        version = %request.token,
    );
    async {
        let started = Instant::now();
        let result = engine.run(&request).await;
        emit_step_metrics(
            &request,
            engine.rotator().kind_of(secret_name_of(&request.secret_id)),
            result.as_ref().ok().copied(),
            started.elapsed().as_millis() as f64,
        );
        match result {
            Ok(outcome) => {
                info!(
                    outcome = outcome.as_str(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "rotation step succeeded"
                );
                Ok(())
            }
            Err(failure) => {
                error!(
                    error_code = failure.code(),
                    error = %failure,
                    duration_ms = started.elapsed().as_millis() as u64,
                    "rotation step failed"
                );
                if failure.already_reported() {
                    info!(
                        decision = "failure_not_mailed_again",
                        "a reattempt of a rotation whose refusal was mailed"
                    );
                } else {
                    notifier
                        .notify(&FailureReport {
                            secret_name: secret_name_of(&request.secret_id).to_owned(),
                            step: request.step.as_str().to_owned(),
                            error_code: failure.code().to_owned(),
                            message: failure.to_string(),
                        })
                        .await;
                }
                Err(failure)
            }
        }
    }
    .instrument(span)
    .await
}

/// The secret's name from the event's SecretId, which Secrets Manager sends as an ARN
/// (`arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>`).
pub fn secret_name_of(secret_id: &str) -> &str {
    match secret_id.split_once(":secret:") {
        Some((_, name_and_suffix)) => match name_and_suffix.rsplit_once('-') {
            Some((name, suffix)) if suffix.len() == 6 => name,
            _ => name_and_suffix,
        },
        None => secret_id,
    }
}

/// Step outcome and duration, for all secrets together, per step and per secret kind: a fixed
/// number of series whatever the number of users (each custom metric series is billed). The
/// secret's name is a property of the record, not a dimension: Logs Insights finds one
/// secret's steps (README, "Logs and metrics"). A completed rotation also counts as
/// `RotationCompleted`.
fn emit_step_metrics(
    request: &RotationRequest,
    kind: &str,
    outcome: Option<super::StepOutcome>,
    duration_ms: f64,
) {
    let name = secret_name_of(&request.secret_id);
    let dimensions = [
        ("Step", request.step.as_str()),
        ("SecretKind", kind),
        ("SecretName", name),
    ];
    let succeeded = if outcome.is_some() { 1.0 } else { 0.0 };
    metrics::emit(
        &dimensions,
        &[&[], &["Step"], &["SecretKind"]],
        &[
            ("RotationStepSucceeded", succeeded, Unit::Count),
            ("RotationStepFailed", 1.0 - succeeded, Unit::Count),
            ("RotationStepDuration", duration_ms, Unit::Milliseconds),
        ],
    );
    if outcome == Some(super::StepOutcome::Finished) {
        metrics::emit(
            &dimensions[1..],
            &[&[], &["SecretKind"]],
            &[("RotationCompleted", 1.0, Unit::Count)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::secret_name_of;

    #[test]
    fn secret_names_come_out_of_arns() {
        assert_eq!(
            secret_name_of(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:keyrot/iam/alice-AbC123"
            ),
            "keyrot/iam/alice"
        );
        assert_eq!(
            secret_name_of(
                "arn:aws:secretsmanager:eu-west-1:123456789012:secret:keyrot/iam/ci-bot-xYz789"
            ),
            "keyrot/iam/ci-bot"
        );
        assert_eq!(secret_name_of("keyrot/iam/alice"), "keyrot/iam/alice");
    }
}
