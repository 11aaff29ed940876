//! One rotation function for several secret kinds: the secret's name picks the rotator.

use super::{RotationError, Rotator, SecretRef};
use crate::Sensitive;

/// Routes the secret named `special_name` to `special`, every other secret to `default`.
pub struct ByName<D, S> {
    default: D,
    special: S,
    special_name: String,
}

impl<D, S> ByName<D, S> {
    pub fn new(default: D, special: S, special_name: impl Into<String>) -> Self {
        Self {
            default,
            special,
            special_name: special_name.into(),
        }
    }
}

macro_rules! route {
    ($self:ident, $secret:ident, $rotator:ident => $call:expr) => {
        if $secret.name == $self.special_name {
            let $rotator = &$self.special;
            $call.await
        } else {
            let $rotator = &$self.default;
            $call.await
        }
    };
}

impl<D: Rotator, S: Rotator> Rotator for ByName<D, S> {
    fn kind(&self) -> &'static str {
        "by-secret-name"
    }

    fn kind_of(&self, secret_name: &str) -> &'static str {
        if secret_name == self.special_name {
            self.special.kind()
        } else {
            self.default.kind()
        }
    }

    fn counts_versions(&self, secret_name: &str) -> bool {
        if secret_name == self.special_name {
            self.special.counts_versions(secret_name)
        } else {
            self.default.counts_versions(secret_name)
        }
    }

    async fn create(
        &self,
        secret: &SecretRef,
        token: &str,
        current: &Sensitive,
        previous: Option<&Sensitive>,
    ) -> Result<Sensitive, RotationError> {
        route!(self, secret, r => r.create(secret, token, current, previous))
    }

    async fn set(
        &self,
        secret: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> Result<(), RotationError> {
        route!(self, secret, r => r.set(secret, current, pending))
    }

    async fn test(&self, secret: &SecretRef, value: &Sensitive) -> Result<(), RotationError> {
        route!(self, secret, r => r.test(secret, value))
    }

    async fn finished(
        &self,
        secret: &SecretRef,
        token: &str,
        promoted: &Sensitive,
        superseded: Option<&Sensitive>,
    ) -> Result<(), RotationError> {
        route!(self, secret, r => r.finished(secret, token, promoted, superseded))
    }
}
