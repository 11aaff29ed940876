//! What the fleet needs from AWS beyond the rotation's ports: the registry, and Secrets
//! Manager's fleet-level calls. IAM goes through the rotation's own [`crate::iam_key::IamKeys`].

use crate::AwsCallError;
use std::future::Future;
use std::time::SystemTime;

pub use crate::iam_key::MANAGED_USER_TAG;
/// Tag on a secret the fleet created (or adopted); only such secrets are ever deleted.
pub const FLEET_SECRET_TAG: &str = "keyrot:fleet";

/// A secret under the managed prefix, as ListSecrets reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSecret {
    pub name: String,
    /// Carries [`FLEET_SECRET_TAG`] with this deployment's prefix.
    pub fleet: bool,
    pub rotation_enabled: bool,
    pub last_rotated: Option<SystemTime>,
    /// Scheduled for deletion at this time (the recovery window has started).
    pub deleted: Option<SystemTime>,
    /// A version holds AWSPENDING without AWSCURRENT: a rotation is in progress.
    pub rotating: bool,
    /// The [`super::policy::stamp`] of the resource policy the fleet last put on it.
    pub policy_stamp: Option<String>,
}

/// What starting a rotation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationStart {
    Started,
    /// Secrets Manager refused it: a rotation is already in progress.
    InProgress,
}

/// What the registry says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryUsers {
    /// The users with a well-formed entry.
    pub users: Vec<String>,
    /// The last path segments of entries that exist but do not parse (garbled, a
    /// SecureString, named after another user): each one holds whatever user of that name
    /// (IAM names are unique whatever their case) exactly as it is, never released.
    pub unreadable: Vec<String>,
}

impl RegistryUsers {
    /// Whether an unreadable entry holds `user`.
    pub fn holds(&self, user: &str) -> bool {
        self.unreadable
            .iter()
            .any(|held| held.eq_ignore_ascii_case(user))
    }
}

pub trait Registry: Send + Sync {
    /// The users with a registry entry, and the entries that exist but do not parse.
    fn users(&self) -> impl Future<Output = Result<RegistryUsers, AwsCallError>> + Send;

    /// Deletes a user's entry (teardown only); succeeds when it is already gone.
    fn remove(&self, user: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

/// The session-deny policy on a managed user (docs/deploy.md, "Sessions outlive deleted keys").
pub trait UserPolicies: Send + Sync {
    /// AttachUserPolicy; attaching an attached policy is no change.
    fn attach_user_policy(
        &self,
        user: &str,
        policy_arn: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// DetachUserPolicy; succeeds when it is not attached (or the user is gone).
    fn detach_user_policy(
        &self,
        user: &str,
        policy_arn: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}

pub trait FleetSecrets: Send + Sync {
    /// Every secret whose name starts with `prefix`, those scheduled for deletion included.
    fn list(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ListedSecret>, AwsCallError>> + Send;

    /// DescribeSecret of one secret, as [`FleetSecrets::list`] would report it: what the run
    /// acts on, since ListSecrets may miss the last five minutes. `None` when it does not
    /// exist.
    fn describe(
        &self,
        name: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<Option<ListedSecret>, AwsCallError>> + Send;

    /// CreateSecret with `value`, tagged as the fleet's; `Ok(false)` when it already exists.
    fn create(
        &self,
        name: &str,
        value: &str,
        fleet_tag: &str,
        kms_key_id: Option<&str>,
    ) -> impl Future<Output = Result<bool, AwsCallError>> + Send;

    /// Tags an existing secret as the fleet's (adoption of a secret made before the fleet).
    fn tag_fleet(
        &self,
        name: &str,
        fleet_tag: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// PutResourcePolicy, then `stamp` as the [`super::policy::POLICY_TAG`] tag.
    fn put_policy(
        &self,
        name: &str,
        policy: &str,
        stamp: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// RotateSecret configuring `function_arn` with the longest native schedule: enables
    /// rotation and rotates at once.
    fn enable_rotation(
        &self,
        name: &str,
        function_arn: &str,
    ) -> impl Future<Output = Result<RotationStart, AwsCallError>> + Send;

    /// RotateSecret naming `function_arn` and the longest native schedule: each rotation the
    /// fleet starts also puts the rotation configuration back to what the stack says.
    fn rotate(
        &self,
        name: &str,
        function_arn: &str,
    ) -> impl Future<Output = Result<RotationStart, AwsCallError>> + Send;

    /// DeleteSecret with the shortest recovery window (7 days): the secret can no longer be
    /// read or rotated, and can still be restored.
    fn schedule_deletion(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// RestoreSecret: undoes [`FleetSecrets::schedule_deletion`].
    fn restore(&self, name: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;

    /// DeleteSecret without recovery; succeeds when it is already gone.
    fn purge(&self, name: &str) -> impl Future<Output = Result<(), AwsCallError>> + Send;
}
