//! The emergency revoke: the one way around the key lifetime contract. An operator names a
//! key (a suspected leak); keyrot deletes it at once, whatever it promised clients, abandons
//! a rotation in progress that would carry it forward, starts a rotation if it was the current
//! key, and logs and mails who is affected. Only keys keyrot made for that secret qualify.

mod authority;
mod ports;
mod request;

pub use authority::{
    refusal as revoke_refusal, RecordedRevoke, RecordedVersion, RevokeAuthority,
    SecretsManagerRevokeRequests, DEFAULT_REVOKE_REQUESTS_SECRET, REQUEST_VALIDITY,
};
pub use ports::{ClientDirectory, RotationStarter, SsmClientDirectory};
pub use request::{MalformedRevoke, RevokeRequest, ACTION};

use crate::iam_key::{IamKeySecret, IamKeys, KeyLedger};
use crate::notify::{FailureNotifier, Mail};
use crate::rotation::{RotationError, SecretStore, Stage};
use serde::Serialize;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    #[error(transparent)]
    Malformed(#[from] MalformedRevoke),
    #[error("refusing to revoke {key_id} of secret {secret}: {reason}")]
    Refused {
        secret: String,
        key_id: String,
        reason: String,
    },
    #[error(transparent)]
    Rotation(#[from] RotationError),
}

impl RevokeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "MalformedRevoke",
            Self::Refused { .. } => "RevokeRefused",
            Self::Rotation(inner) => inner.code(),
        }
    }
}

impl From<crate::AwsCallError> for RevokeError {
    fn from(error: crate::AwsCallError) -> Self {
        Self::Rotation(RotationError::Aws(error))
    }
}

impl From<RevokeError> for lambda_runtime::Diagnostic {
    fn from(error: RevokeError) -> Self {
        Self {
            error_type: format!("keyrot.revoke.{}", error.code()),
            error_message: error.to_string(),
        }
    }
}

/// What the revoke did; returned to the operator and mailed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Revoked {
    pub secret_name: String,
    pub user_name: String,
    pub access_key_id: String,
    pub reason: String,
    /// The key was the one the API was handing out: its slot's AWSCURRENT, and newer than the
    /// other slot's key.
    pub was_current: bool,
    /// The rotation started to replace it, or why none could start.
    pub rotation_version: Option<String>,
    pub rotation_error: Option<String>,
    /// Rotations in progress that were abandoned because they carried the key forward.
    pub abandoned_versions: Vec<String>,
    /// Clients allowed to read the user (they may hold the key), if the registry could be read.
    pub clients: Option<Vec<String>>,
}

impl Mail for Revoked {
    fn subject(&self) -> String {
        format!(
            "keyrot: access key {} of {} revoked",
            self.access_key_id, self.user_name
        )
    }

    fn body(&self) -> String {
        let clients = match &self.clients {
            Some(clients) if clients.is_empty() => "none".to_owned(),
            Some(clients) => clients.join(", "),
            None => "unknown (the client registry could not be read)".to_owned(),
        };
        let rotation = match (&self.rotation_version, &self.rotation_error) {
            (Some(version), _) => format!("a rotation started (version {version})"),
            (None, Some(error)) => format!("no rotation could start: {error}"),
            (None, None) => "no rotation was needed (the key was no longer current)".to_owned(),
        };
        format!(
            "Access key {key} of IAM user {user} (secret {secret}) was deleted by an emergency \
             revoke, before the end of what keyrot had promised clients.\n\nReason: {reason}\n\
             It was the current key: {current}. Then {rotation}.\n\
             Clients allowed to read {user}, who may hold the key and must fetch a new one: \
             {clients}.\n",
            key = self.access_key_id,
            user = self.user_name,
            secret = self.secret_name,
            reason = self.reason,
            current = if self.was_current { "yes" } else { "no" },
        )
    }
}

pub struct Revoker<S, I, R, C, A> {
    pub store: S,
    pub iam: I,
    pub starter: R,
    pub clients: C,
    /// Where operators record a revoke before asking for it.
    pub authority: A,
    pub managed_prefix: String,
}

impl<S, I, R, C, A> Revoker<S, I, R, C, A>
where
    S: SecretStore,
    I: IamKeys,
    R: RotationStarter,
    C: ClientDirectory,
    A: RevokeAuthority,
{
    /// Whether `key_id`, the AWSCURRENT key of `secret`, is the user's newest: the other slot
    /// holds no key, or an older one (IAM's creation times).
    async fn is_newest(&self, user: &str, secret: &str, key_id: &str) -> Result<bool, RevokeError> {
        let Some(sibling) = crate::key_slots::sibling_name(&self.managed_prefix, secret) else {
            return Ok(true);
        };
        let Some(value) = self.store.get_value(&sibling, None, Stage::Current).await? else {
            return Ok(true);
        };
        let Some(theirs) = IamKeySecret::parse(&value, &sibling, Stage::Current.label())
            .ok()
            .filter(|value| value.user_name == user)
            .and_then(|value| value.access_key_id)
        else {
            return Ok(true);
        };
        let keys = self.iam.list_access_keys(user).await?;
        let created = |id: &str| {
            keys.iter()
                .find(|key| key.id == id)
                .and_then(|key| key.created)
        };
        Ok(match (created(&theirs), created(key_id)) {
            (Some(theirs), Some(ours)) => ours >= theirs,
            (None, _) => true,
            (Some(_), None) => false,
        })
    }

    pub async fn revoke(
        &self,
        request: &RevokeRequest,
        notifier: &impl FailureNotifier,
    ) -> Result<Revoked, RevokeError> {
        let key_id = request.access_key_id.as_str();
        let refuse = |secret: &str, reason: &str| RevokeError::Refused {
            secret: secret.to_owned(),
            key_id: key_id.to_owned(),
            reason: reason.to_owned(),
        };
        // The event proves nothing (anyone who may invoke the function can send it): only a
        // request recorded where only the stack's revoke principals may write.
        let recorded = self.authority.latest().await?;
        if let Some(reason) =
            authority::refusal(recorded.as_ref(), request, std::time::SystemTime::now())
        {
            return Err(refuse(
                &request.secret_id,
                &format!("{reason}; record it first (keyrot revoke does, as one of the stack's RevokePrincipalArns)"),
            ));
        }
        if let Some(recorded) = &recorded {
            info!(
                decision = "revoke_authorised",
                secret = %request.secret_id,
                key_id,
                request_version = %recorded.version_id,
                "revoke recorded in the requests secret (CloudTrail's PutSecretValue names who)"
            );
        }
        let description = self.store.describe(&request.secret_id).await?;
        let secret = description.name.clone();
        let Some((user, _slot)) =
            crate::key_slots::parse_secret_name(&self.managed_prefix, &secret)
        else {
            return Err(refuse(&secret, "it is not a managed IAM key secret"));
        };
        let current = self
            .store
            .get_value(&request.secret_id, None, Stage::Current)
            .await?
            .ok_or_else(|| refuse(&secret, "the secret has no AWSCURRENT value"))?;
        let current = IamKeySecret::parse(&current, &secret, Stage::Current.label())?;
        if current.user_name != user {
            return Err(refuse(&secret, "its value names another user"));
        }
        let tags = self.iam.list_user_tags(user).await?;
        let keys = self.iam.list_access_keys(user).await?;
        let ledger = KeyLedger::from_tags_and_keys(&tags, &keys);
        let slot_current = current.access_key_id.as_deref() == Some(key_id);
        if !slot_current && !ledger.is_managed_by(key_id, &secret) {
            return Err(refuse(
                &secret,
                "keyrot did not make that key for this secret (delete a hand-made key with aws iam delete-access-key)",
            ));
        }

        // A rotation in progress that carries the key forward would store it again.
        let mut abandoned_versions = Vec::new();
        for version in description.versions_with(Stage::Pending) {
            if description.has_stage(version, Stage::Current) {
                continue;
            }
            let pending = self
                .store
                .get_value(&request.secret_id, Some(version), Stage::Pending)
                .await?;
            let carries_key = pending
                .and_then(|value| IamKeySecret::parse(&value, &secret, "AWSPENDING").ok())
                .is_some_and(|value| value.access_key_id.as_deref() == Some(key_id));
            if carries_key {
                self.store
                    .move_stage(&request.secret_id, Stage::Pending, None, Some(version))
                    .await?;
                abandoned_versions.push(version.to_owned());
            }
        }

        // Only the key being handed out needs replacing at once; an older slot's key mints its
        // successor at the slot's own tick, while the API keeps serving the newer one.
        let was_current = slot_current && self.is_newest(user, &secret, key_id).await?;
        self.iam.delete_access_key(user, key_id).await?;
        if tags.iter().any(|(tag, _)| tag == key_id) {
            self.iam.untag_user(user, &[key_id.to_owned()]).await?;
        }

        let (rotation_version, rotation_error) = if was_current {
            match self.starter.start_rotation(&request.secret_id).await {
                Ok(version) => (Some(version), None),
                Err(failure) => (None, Some(failure.to_string())),
            }
        } else {
            (None, None)
        };
        let clients = match self.clients.readers_of(user).await {
            Ok(clients) => Some(clients),
            Err(failure) => {
                warn!(decision = "clients_unknown", error = %failure);
                None
            }
        };
        let revoked = Revoked {
            secret_name: secret.clone(),
            user_name: user.to_owned(),
            access_key_id: key_id.to_owned(),
            reason: request.reason.clone(),
            was_current,
            rotation_version,
            rotation_error,
            abandoned_versions,
            clients,
        };
        error!(
            decision = "key_revoked",
            secret = %revoked.secret_name,
            user = %revoked.user_name,
            key_id,
            reason = %revoked.reason,
            was_current,
            rotation_version = ?revoked.rotation_version,
            rotation_error = ?revoked.rotation_error,
            clients = ?revoked.clients,
            "emergency revoke: key deleted before the end of its promise"
        );
        crate::metrics::emit(
            &[],
            &[&[]],
            &[("KeyRevoked", 1.0, crate::metrics::Unit::Count)],
        );
        notifier.notify(&revoked).await;
        Ok(revoked)
    }
}

/// The Lambda entry point of a revoke: parse, revoke, answer with what was done.
pub async fn handle_revoke_event<S, I, R, C, A, N>(
    revoker: &Revoker<S, I, R, C, A>,
    notifier: &N,
    event: lambda_runtime::LambdaEvent<serde_json::Value>,
) -> Result<serde_json::Value, RevokeError>
where
    S: SecretStore,
    I: IamKeys,
    R: RotationStarter,
    C: ClientDirectory,
    A: RevokeAuthority,
    N: FailureNotifier,
{
    use tracing::Instrument;
    let request_id = event.context.request_id;
    let span = tracing::info_span!("revoke", request_id = %request_id);
    async {
        let result = match RevokeRequest::parse(event.payload) {
            Ok(request) => revoker.revoke(&request, notifier).await,
            Err(malformed) => Err(malformed.into()),
        };
        match result {
            Ok(revoked) => Ok(serde_json::to_value(&revoked).unwrap_or_default()),
            Err(failure) => {
                warn!(decision = "revoke_refused", error_code = failure.code(), error = %failure);
                Err(failure)
            }
        }
    }
    .instrument(span)
    .await
}
