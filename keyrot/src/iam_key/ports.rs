//! The IAM and STS calls the access key rotator needs, as narrow traits.

use crate::{AwsCallError, Sensitive};
use std::future::Future;
use std::time::SystemTime;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUser {
    pub name: String,
    pub arn: String,
    /// The user's tags, as GetUser returns them (readable without keyrot's tag).
    pub tags: Vec<(String, String)>,
}

impl IamUser {
    /// The user's IAM path (`/`, `/division/`), from its ARN.
    pub fn path(&self) -> Option<&str> {
        let (_, name_with_path) = self.arn.split_once(":user")?;
        let (path, _) = name_with_path.rsplit_once('/')?;
        Some(&name_with_path[..=path.len()])
    }

    /// Whether the user's path is `eligible` or under it.
    pub fn is_under(&self, eligible: &str) -> bool {
        self.path().is_some_and(|path| path.starts_with(eligible))
    }

    /// Whether keyrot enrolled the user (its `keyrot:managed` tag).
    pub fn is_enrolled(&self) -> bool {
        self.tags
            .iter()
            .any(|(key, _)| key == super::ledger::MANAGED_USER_TAG)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub id: String,
    pub active: bool,
    pub created: Option<SystemTime>,
}

#[derive(Debug, Clone)]
pub struct NewAccessKey {
    pub id: String,
    pub secret: Sensitive,
    /// RFC 3339, as IAM reported it.
    pub created_at: Option<String>,
}

pub trait IamKeys: Send + Sync {
    /// `None` when the user does not exist.
    fn get_user(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Option<IamUser>, AwsCallError>> + Send;

    fn list_access_keys(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<AccessKeyInfo>, AwsCallError>> + Send;

    /// When the key was last used; `None` if never.
    fn key_last_used(
        &self,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<SystemTime>, AwsCallError>> + Send;

    fn list_user_tags(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<Vec<(String, String)>, AwsCallError>> + Send;

    fn tag_user(
        &self,
        user: &str,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    fn untag_user(
        &self,
        user: &str,
        keys: &[String],
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// Not retried by the SDK: a lost response must not turn into a second key.
    fn create_access_key(
        &self,
        user: &str,
    ) -> impl Future<Output = Result<NewAccessKey, AwsCallError>> + Send;

    /// Succeeds when the key is already gone, so a retried deletion is harmless.
    fn delete_access_key(
        &self,
        user: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// What STS said about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    Authenticated {
        arn: String,
    },
    /// Not (yet) accepted: unknown key, propagation lag, throttling, network trouble.
    Rejected {
        reason: String,
    },
}

pub trait KeyVerifier: Send + Sync {
    fn check(&self, key_id: &str, secret: &Sensitive) -> impl Future<Output = KeyCheck> + Send;
}

/// The other key slot's secret, as the slot being rotated needs it.
#[derive(Debug, Clone)]
pub struct SiblingSecret {
    /// Its AWSCURRENT value, if it has one.
    pub current: Option<Sensitive>,
    /// A version holds AWSPENDING without AWSCURRENT: a rotation of it is under way.
    pub rotating: bool,
    /// Its AWSPENDING value while it is rotating, once createSecret stored one.
    pub pending: Option<Sensitive>,
    /// When its last rotation completed (DescribeSecret's `LastRotatedDate`).
    pub last_rotated: Option<SystemTime>,
}

/// Values of a secret's versions by id, to confirm a managed-key mark before acting on it, and
/// the other slot's secret.
pub trait SecretVersions: Send + Sync {
    /// `None` when the sibling secret does not exist (a user with one secret) or is scheduled
    /// for deletion.
    fn sibling(
        &self,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<SiblingSecret>, AwsCallError>> + Send;

    /// The value of `version_id`; `None` when the version has no value or no longer exists.
    fn version_value(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<Option<Sensitive>, AwsCallError>> + Send;

    /// Whether the secret's history (deprecated versions included) lists `version_id`.
    fn version_listed(
        &self,
        secret_id: &str,
        version_id: &str,
    ) -> impl Future<Output = Result<bool, AwsCallError>> + Send;
}
