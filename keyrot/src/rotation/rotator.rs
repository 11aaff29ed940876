//! The per-kind part of a rotation: what a new version is and how it is set up and tested.

use super::RotationError;
use crate::Sensitive;
use std::future::Future;

/// The secret being rotated, as DescribeSecret named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub arn: String,
    pub name: String,
    /// When its last rotation completed, as DescribeSecret said.
    pub last_rotated: Option<std::time::SystemTime>,
}

/// One kind of rotated secret (an IAM access key, a signing key, ...). The engine runs the
/// protocol and the label moves; a rotator only deals with its own kind's resources.
pub trait Rotator: Send + Sync {
    /// Short name for logs and metrics, e.g. `iam-access-key`.
    fn kind(&self) -> &'static str;

    /// The kind that rotates the secret named `secret_name` (a router answers for the rotator
    /// it would pick). A metric dimension: it takes a few fixed values, never one per secret.
    fn kind_of(&self, _secret_name: &str) -> &'static str {
        self.kind()
    }

    /// Whether the engine reports the secret's version count against Secrets Manager's
    /// version quota (the kinds that rotate often enough to reach it).
    fn counts_versions(&self, _secret_name: &str) -> bool {
        false
    }

    /// createSecret: the value of the new version, made from the AWSCURRENT one (and the
    /// AWSPREVIOUS one, when there is one). Called only while the pending version has no value
    /// yet, so it must clean up whatever an earlier, interrupted attempt for the same token
    /// left behind.
    fn create(
        &self,
        secret: &SecretRef,
        token: &str,
        current: &Sensitive,
        previous: Option<&Sensitive>,
    ) -> impl Future<Output = Result<Sensitive, RotationError>> + Send;

    /// setSecret: apply the pending value where it is used, or check that nothing needs to be.
    fn set(
        &self,
        secret: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;

    /// testSecret: prove the value works.
    fn test(
        &self,
        secret: &SecretRef,
        value: &Sensitive,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;

    /// finishSecret, after AWSCURRENT moved to the token: tidy up or publish. `superseded` is
    /// the value that was AWSCURRENT before (now AWSPREVIOUS), when known.
    fn finished(
        &self,
        secret: &SecretRef,
        token: &str,
        promoted: &Sensitive,
        superseded: Option<&Sensitive>,
    ) -> impl Future<Output = Result<(), RotationError>> + Send;
}
