//! The rotation event Secrets Manager sends, parsed into a typed request.

use super::RotationError;
use crate::json_error::describe_json_error;
use aws_lambda_events::event::secretsmanager::SecretsManagerSecretRotationEvent;
use std::fmt;

/// The four steps of Secrets Manager's rotation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub fn parse(step: &str) -> Result<Self, RotationError> {
        match step {
            "createSecret" => Ok(Self::Create),
            "setSecret" => Ok(Self::Set),
            "testSecret" => Ok(Self::Test),
            "finishSecret" => Ok(Self::Finish),
            other => Err(RotationError::UnknownStep(other.chars().take(64).collect())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "createSecret",
            Self::Set => "setSecret",
            Self::Test => "testSecret",
            Self::Finish => "finishSecret",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invocation of the rotation function: which step, for which secret and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRequest {
    pub step: Step,
    pub secret_id: String,
    /// The version id Secrets Manager created for this rotation (`ClientRequestToken`).
    pub token: String,
}

impl RotationRequest {
    /// Parses the raw event. Fields beyond the three the protocol needs (such as
    /// `RotationToken`, added by AWS in 2025) are ignored.
    pub fn from_event(event: serde_json::Value) -> Result<Self, RotationError> {
        // serde's derived struct parser also takes a JSON array, positionally: Secrets
        // Manager sends objects only (found by tests/parsers_props.rs).
        if !event.is_object() {
            return Err(RotationError::MalformedEvent(
                "the event is not a JSON object".into(),
            ));
        }
        let event: SecretsManagerSecretRotationEvent = serde_json::from_value(event)
            .map_err(|error| RotationError::MalformedEvent(describe_json_error(&error)))?;
        let step = Step::parse(&event.step)?;
        if event.secret_id.is_empty() {
            return Err(RotationError::MalformedEvent("SecretId is empty".into()));
        }
        if event.client_request_token.is_empty() {
            return Err(RotationError::MalformedEvent(
                "ClientRequestToken is empty".into(),
            ));
        }
        Ok(Self {
            step,
            secret_id: event.secret_id,
            token: event.client_request_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_each_step_and_ignores_extra_fields() {
        for (name, step) in [
            ("createSecret", Step::Create),
            ("setSecret", Step::Set),
            ("testSecret", Step::Test),
            ("finishSecret", Step::Finish),
        ] {
            let request = RotationRequest::from_event(json!({
                "Step": name,
                "SecretId": "keyrot/iam/alice",
                "ClientRequestToken": "0b2c9a4e-1111-2222-3333-444455556666",
                "RotationToken": "opaque-cross-account-token",
            }))
            .expect("valid event");
            assert_eq!(request.step, step);
            assert_eq!(request.secret_id, "keyrot/iam/alice");
            assert_eq!(request.token, "0b2c9a4e-1111-2222-3333-444455556666");
        }
    }

    #[test]
    fn rejects_unknown_step_by_name() {
        let error = RotationRequest::from_event(json!({
            "Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"
        }))
        .unwrap_err();
        assert!(matches!(error, RotationError::UnknownStep(ref s) if s == "dropSecret"));
        assert!(error.to_string().contains("createSecret"));
    }

    #[test]
    fn rejects_missing_and_empty_fields() {
        let missing = RotationRequest::from_event(json!({"Step": "createSecret", "SecretId": "s"}))
            .unwrap_err();
        assert!(
            missing.to_string().contains("ClientRequestToken"),
            "{missing}"
        );
        let empty = RotationRequest::from_event(json!({
            "Step": "createSecret", "SecretId": "", "ClientRequestToken": "t"
        }))
        .unwrap_err();
        assert!(matches!(empty, RotationError::MalformedEvent(_)));
        let not_object = RotationRequest::from_event(json!(["createSecret"])).unwrap_err();
        assert!(matches!(not_object, RotationError::MalformedEvent(_)));
        // A complete event as an array, positionally, is no event either.
        let positional =
            RotationRequest::from_event(json!(["createSecret", "keyrot/iam/alice", "t"]))
                .unwrap_err();
        assert!(matches!(positional, RotationError::MalformedEvent(_)));
    }
}
