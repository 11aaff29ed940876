//! The value stored in a managed secret.

use crate::rotation::{parse_secret_json, RotationError};
use crate::Sensitive;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime};

/// `{"UserName", "AccessKeyId", "SecretAccessKey", "CreatedAt", "IntervalSeconds", "ExpiresAt"}`.
/// A freshly onboarded secret holds only `UserName`; the first rotation creates the first
/// managed key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IamKeySecret {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// When IAM created the key (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// The rotation interval this version is handed out under: the API promises the key for
    /// this long after each fetch, and the rotator keeps it that long after it stops being
    /// AWSCURRENT. Written by the rotator; absent in values older than the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
    /// When keyrot retires this key (RFC 3339, UTC): a tick of its slot fixed when the key was
    /// minted (`crate::key_slots::retirement`). The API promises the key until then. Absent in
    /// values written before the key slots, whose promise is one interval after each fetch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For a key carried forward: no later than when it became its slot's AWSCURRENT (RFC
    /// 3339). The other slot retires its own key only a slack after this, and a carry-forward
    /// keeps it, so that early rotations of this slot do not hold up the other's tick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_since: Option<String>,
}

pub(crate) const KIND: &str = "iam-access-key";

impl IamKeySecret {
    pub fn parse(
        value: &Sensitive,
        secret: &str,
        stage: &'static str,
    ) -> Result<Self, RotationError> {
        let invalid = |reason: &str| RotationError::invalid_value(secret, stage, KIND, reason);
        let parsed: Self = parse_secret_json(value, secret, stage, KIND)?;
        if parsed.user_name.trim().is_empty() {
            return Err(invalid("UserName is empty"));
        }
        if parsed.access_key_id.is_some() != parsed.secret_access_key.is_some() {
            return Err(invalid(
                "AccessKeyId and SecretAccessKey must be both present or both absent",
            ));
        }
        Ok(parsed)
    }

    pub fn to_sensitive(&self) -> Sensitive {
        // Serialising plain strings and options cannot fail.
        Sensitive::new(serde_json::to_string(self).unwrap_or_default())
    }

    pub fn interval(&self) -> Option<Duration> {
        self.interval_seconds.map(Duration::from_secs)
    }

    /// When IAM created the key, if recorded and well-formed.
    pub fn created(&self) -> Option<SystemTime> {
        parse_time(self.created_at.as_deref()?)
    }

    /// No later than when the key became its slot's AWSCURRENT, if recorded and well-formed.
    pub fn current_since(&self) -> Option<SystemTime> {
        parse_time(self.current_since.as_deref()?)
    }

    /// When keyrot retires the key, if recorded and well-formed.
    pub fn expires(&self) -> Option<SystemTime> {
        parse_time(self.expires_at.as_deref()?)
    }

    /// The key's id and secret, when the secret holds a key.
    pub fn key(&self) -> Option<(&str, Sensitive)> {
        match (&self.access_key_id, &self.secret_access_key) {
            (Some(id), Some(secret)) => Some((id.as_str(), Sensitive::new(secret.clone()))),
            _ => None,
        }
    }
}

fn parse_time(text: &str) -> Option<SystemTime> {
    let parsed = DateTime::from_str(text, Format::DateTime).ok()?;
    SystemTime::try_from(parsed).ok()
}

impl fmt::Debug for IamKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamKeySecret")
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("created_at", &self.created_at)
            .field("interval_seconds", &self.interval_seconds)
            .field("expires_at", &self.expires_at)
            .field("current_since", &self.current_since)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<IamKeySecret, RotationError> {
        IamKeySecret::parse(&Sensitive::new(json), "keyrot/iam/alice", "AWSCURRENT")
    }

    #[test]
    fn accepts_onboarding_value_and_full_value() {
        let fresh = parse(r#"{"UserName":"alice"}"#).expect("onboarding value");
        assert_eq!(fresh.user_name, "alice");
        assert!(fresh.key().is_none());
        let full = parse(
            r#"{"UserName":"alice","AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"s3cr3t","CreatedAt":"2026-01-01T00:00:00Z","Extra":1}"#,
        )
        .expect("full value");
        assert_eq!(full.key().map(|(id, _)| id), Some("AKIAEXAMPLE"));
    }

    #[test]
    fn rejects_bad_values_with_reasons_and_without_echoing_them() {
        let not_json = parse("s3cr3t-not-json").unwrap_err();
        assert!(
            not_json.to_string().contains("not valid JSON"),
            "{not_json}"
        );
        assert!(!not_json.to_string().contains("s3cr3t"));
        let missing = parse(r#"{"AccessKeyId":"AKIA"}"#).unwrap_err();
        assert!(missing.to_string().contains("UserName"), "{missing}");
        let empty = parse(r#"{"UserName":" "}"#).unwrap_err();
        assert!(empty.to_string().contains("UserName is empty"));
        let half = parse(r#"{"UserName":"alice","AccessKeyId":"AKIA"}"#).unwrap_err();
        assert!(half.to_string().contains("both present"));
        let wrong_type = parse(r#"{"UserName":"alice","SecretAccessKey":12345}"#).unwrap_err();
        assert!(!wrong_type.to_string().contains("12345"), "{wrong_type}");
    }

    #[test]
    fn debug_hides_the_secret_access_key() {
        let value =
            parse(r#"{"UserName":"alice","AccessKeyId":"AKIA1","SecretAccessKey":"s3cr3t"}"#)
                .expect("valid");
        let shown = format!("{value:?}");
        assert!(
            shown.contains("AKIA1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
