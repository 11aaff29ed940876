//! The Lambda entry point of a rotation: parse, run, log the decision.

use super::{RotationEngine, RotationError, RotationRequest, Rotator, SecretStore};
use lambda_runtime::LambdaEvent;
use std::time::Instant;
use tracing::{error, info, info_span, warn, Instrument};

/// Runs one rotation step for a raw Secrets Manager event. The event is taken as JSON so a
/// malformed one yields a [`RotationError::MalformedEvent`] naming what is wrong.
pub async fn handle_rotation_event<S: SecretStore, R: Rotator>(
    engine: &RotationEngine<S, R>,
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
        match engine.run(&request).await {
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
                Err(failure)
            }
        }
    }
    .instrument(span)
    .await
}
