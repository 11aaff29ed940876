//! Who may revoke. Anyone allowed to invoke rotation-fn can send it a `RevokeKey` event, so
//! the event alone proves nothing: an operator first records the request in a secret whose
//! resource policy lets only the stack's revoke principals write it (template.yaml,
//! `RevokeRequestsSecret`), and the revoke goes ahead only for a recent record naming the same
//! secret and key. CloudTrail's PutSecretValue event names who recorded it.

use super::request::RevokeRequest;
use crate::AwsCallError;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::{Duration, SystemTime};

pub const DEFAULT_REVOKE_REQUESTS_SECRET: &str = "keyrot/revoke-requests";
/// How long a recorded request authorises its revoke: long enough for a slow operator's
/// `keyrot revoke` (record, confirm, invoke), short enough that an old record is no standing
/// licence.
pub const REQUEST_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// What an operator records: the secret and key to revoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordedRevoke {
    pub secret_id: String,
    pub access_key_id: String,
}

/// The requests secret's AWSCURRENT version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedVersion {
    /// `None` when the value is not a request (the secret's initial `{}`, or garbage).
    pub request: Option<RecordedRevoke>,
    pub version_id: String,
    pub created: Option<SystemTime>,
}

pub trait RevokeAuthority: Send + Sync {
    /// The latest recorded request; `None` when the secret does not exist.
    fn latest(&self) -> impl Future<Output = Result<Option<RecordedVersion>, AwsCallError>> + Send;
}

/// Why a recorded version does not authorise `request` at `now`; `None` when it does.
pub fn refusal(
    recorded: Option<&RecordedVersion>,
    request: &RevokeRequest,
    now: SystemTime,
) -> Option<&'static str> {
    let Some(recorded) = recorded else {
        return Some("no revoke request is recorded (the requests secret does not exist)");
    };
    let Some(asked) = &recorded.request else {
        return Some(
            "the recorded revoke request is not one (expected {\"SecretId\", \"AccessKeyId\"})",
        );
    };
    if asked.secret_id != request.secret_id || asked.access_key_id != request.access_key_id {
        return Some("the recorded revoke request names another secret or key");
    }
    let fresh = recorded
        .created
        .and_then(|created| created.checked_add(REQUEST_VALIDITY))
        .is_some_and(|until| now <= until);
    if !fresh {
        return Some("the recorded revoke request is older than 15 minutes");
    }
    None
}

/// The requests secret in Secrets Manager.
pub struct SecretsManagerRevokeRequests {
    client: aws_sdk_secretsmanager::Client,
    name: String,
}

impl SecretsManagerRevokeRequests {
    pub fn new(client: aws_sdk_secretsmanager::Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }
}

impl RevokeAuthority for SecretsManagerRevokeRequests {
    async fn latest(&self) -> Result<Option<RecordedVersion>, AwsCallError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(&self.name)
            .version_stage("AWSCURRENT")
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(error) => {
                let error = AwsCallError::from_sdk("GetSecretValue", &error);
                return if error.has_code("ResourceNotFoundException") {
                    Ok(None)
                } else {
                    Err(error)
                };
            }
        };
        Ok(Some(RecordedVersion {
            request: output
                .secret_string()
                .and_then(|text| serde_json::from_str(text).ok()),
            version_id: output.version_id().unwrap_or_default().to_owned(),
            created: output
                .created_date()
                .and_then(|date| SystemTime::try_from(*date).ok()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RevokeRequest {
        RevokeRequest {
            action: "RevokeKey".into(),
            secret_id: "keyrot/iam/alice".into(),
            access_key_id: "AKIAEXAMPLE000000001".into(),
            reason: "leaked".into(),
        }
    }

    fn recorded(secret: &str, key: &str, age: Duration, now: SystemTime) -> RecordedVersion {
        RecordedVersion {
            request: Some(RecordedRevoke {
                secret_id: secret.into(),
                access_key_id: key.into(),
            }),
            version_id: "v1".into(),
            created: now.checked_sub(age),
        }
    }

    #[test]
    fn only_a_recent_record_of_the_same_secret_and_key_authorises() {
        let now = SystemTime::now();
        let minute = Duration::from_secs(60);
        let key = "AKIAEXAMPLE000000001";
        let ok = recorded("keyrot/iam/alice", key, minute, now);
        assert_eq!(refusal(Some(&ok), &request(), now), None);
        for (version, why) in [
            (recorded("keyrot/iam/alice/b", key, minute, now), "another"),
            (
                recorded("keyrot/iam/alice", "AKIAEXAMPLE000000002", minute, now),
                "another",
            ),
            (recorded("keyrot/iam/alice", key, 16 * minute, now), "older"),
            (
                RecordedVersion {
                    request: None,
                    ..ok.clone()
                },
                "not one",
            ),
            (
                RecordedVersion {
                    created: None,
                    ..ok.clone()
                },
                "older",
            ),
        ] {
            let reason = refusal(Some(&version), &request(), now).expect("refused");
            assert!(reason.contains(why), "{reason}");
        }
        assert!(refusal(None, &request(), now).is_some());
    }
}
