//! The emergency revoke's input: `{"Action": "RevokeKey", "SecretId": "keyrot/iam/alice",
//! "AccessKeyId": "AKIA…", "Reason": "…"}`, sent to rotation-fn by an operator with
//! `aws lambda invoke`.

use crate::json_error::describe_json_error;
use serde::Deserialize;

pub const ACTION: &str = "RevokeKey";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct RevokeRequest {
    pub action: String,
    pub secret_id: String,
    pub access_key_id: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed revoke request: {0}")]
pub struct MalformedRevoke(pub String);

impl RevokeRequest {
    /// Whether `event` asks for a revoke (rather than being a rotation step).
    pub fn is_revoke(event: &serde_json::Value) -> bool {
        event.get("Action").is_some()
    }

    pub fn parse(event: serde_json::Value) -> Result<Self, MalformedRevoke> {
        let request: Self = serde_json::from_value(event)
            .map_err(|error| MalformedRevoke(describe_json_error(&error)))?;
        if request.action != ACTION {
            return Err(MalformedRevoke(format!(
                "Action must be {ACTION:?}, not {:?}",
                request.action.chars().take(32).collect::<String>()
            )));
        }
        let id_ok = (16..=128).contains(&request.access_key_id.len())
            && request
                .access_key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        if !id_ok {
            return Err(MalformedRevoke(
                "AccessKeyId must be an access key id (16 to 128 letters and digits)".into(),
            ));
        }
        if request.secret_id.trim().is_empty() {
            return Err(MalformedRevoke("SecretId is empty".into()));
        }
        if request.reason.trim().len() < 3 || request.reason.len() > 500 {
            return Err(MalformedRevoke(
                "Reason must say why, in 3 to 500 characters".into(),
            ));
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_revoke_names_the_secret_the_key_and_why() {
        let event = json!({"Action": "RevokeKey", "SecretId": "keyrot/iam/alice",
            "AccessKeyId": "AKIAEXAMPLEEXAMPLE12", "Reason": "leaked in a CI log"});
        assert!(RevokeRequest::is_revoke(&event));
        let request = RevokeRequest::parse(event).expect("valid");
        assert_eq!(request.access_key_id, "AKIAEXAMPLEEXAMPLE12");
        let step = json!({"Step": "createSecret", "SecretId": "x", "ClientRequestToken": "t"});
        assert!(!RevokeRequest::is_revoke(&step));
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let bad = [
            json!({"Action": "Delete", "SecretId": "s", "AccessKeyId": "AKIAEXAMPLEEXAMPLE12", "Reason": "why not"}),
            json!({"Action": "RevokeKey", "SecretId": "s", "AccessKeyId": "AKIA;rm", "Reason": "why not"}),
            json!({"Action": "RevokeKey", "SecretId": "s", "AccessKeyId": "AKIAEXAMPLEEXAMPLE12"}),
            json!({"Action": "RevokeKey", "SecretId": "s", "AccessKeyId": "AKIAEXAMPLEEXAMPLE12", "Reason": ""}),
            json!({"Action": "RevokeKey", "SecretId": " ", "AccessKeyId": "AKIAEXAMPLEEXAMPLE12", "Reason": "leak"}),
        ];
        for event in bad {
            assert!(RevokeRequest::parse(event.clone()).is_err(), "{event}");
        }
    }
}
