//! The secret store port: the four Secrets Manager calls the protocol needs.

use crate::{AwsCallError, Sensitive};
use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;

/// Staging labels the protocol moves between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Current,
    Pending,
    Previous,
    /// keyrot's own mark on a rotation's version once createSecret refused it at the version
    /// limit, so that Secrets Manager's reattempts of the same rotation are not mailed again.
    VersionLimitRefused,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Self::Current => "AWSCURRENT",
            Self::Pending => "AWSPENDING",
            Self::Previous => "AWSPREVIOUS",
            Self::VersionLimitRefused => "KEYROT_VERSION_LIMIT",
        }
    }
}

/// What DescribeSecret tells the protocol.
#[derive(Debug, Clone, Default)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    /// When its last rotation completed (`LastRotatedDate`).
    pub last_rotated: Option<SystemTime>,
    /// Version id → staging labels.
    pub versions: HashMap<String, Vec<String>>,
}

impl SecretDescription {
    pub fn stages_of(&self, version_id: &str) -> Option<&[String]> {
        self.versions.get(version_id).map(Vec::as_slice)
    }

    pub fn has_stage(&self, version_id: &str, stage: Stage) -> bool {
        self.stages_of(version_id)
            .is_some_and(|stages| stages.iter().any(|s| s == stage.label()))
    }

    /// Every version carrying `stage` (Secrets Manager keeps a label on at most one version,
    /// but the protocol must cope with whatever it finds).
    pub fn versions_with(&self, stage: Stage) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .versions
            .iter()
            .filter(|(_, stages)| stages.iter().any(|s| s == stage.label()))
            .map(|(id, _)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// Secrets Manager as the rotation protocol uses it. Reads always name the stage (and the
/// version where known) explicitly.
pub trait SecretStore: Send + Sync {
    fn describe(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<SecretDescription, AwsCallError>> + Send;

    /// The value of the version with `stage` (and `version_id`, if given); `None` when no
    /// such version has a value yet (e.g. the AWSPENDING version before createSecret).
    fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: Stage,
    ) -> impl Future<Output = Result<Option<Sensitive>, AwsCallError>> + Send;

    /// PutSecretValue with the token as version id and AWSPENDING as its only label.
    fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &Sensitive,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// How many versions Secrets Manager may not remove yet: every labelled one, and every
    /// one created after `kept_since` (AWS keeps versions younger than 24 hours).
    fn count_kept_versions(
        &self,
        secret_id: &str,
        kept_since: SystemTime,
    ) -> impl Future<Output = Result<usize, AwsCallError>> + Send;

    /// UpdateSecretVersionStage.
    fn move_stage(
        &self,
        secret_id: &str,
        stage: Stage,
        move_to: Option<&str>,
        remove_from: Option<&str>,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}
