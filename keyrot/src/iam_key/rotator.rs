//! The IAM access key rotator: creates the user's next key without ever exceeding IAM's two
//! keys, touching the AWSCURRENT key, or touching a key keyrot did not create.

use super::ledger::{managed_tag_value, CreationIntent, KeyLedger};
use super::ports::{AccessKeyInfo, IamKeys, IamUser, KeyCheck, KeyVerifier};
use super::secret::{IamKeySecret, KIND};
use crate::backoff::Backoff;
use crate::rotation::{RotationError, Rotator, SecretRef, Stage};
use crate::Sensitive;
use std::collections::HashSet;
use std::time::SystemTime;
use tracing::{info, warn};

/// IAM's limit of access keys per user.
const KEYS_PER_USER: usize = 2;

pub struct IamKeyRotator<I, V> {
    iam: I,
    verifier: V,
    verify_backoff: Backoff,
}

impl<I: IamKeys, V: KeyVerifier> IamKeyRotator<I, V> {
    pub fn new(iam: I, verifier: V, verify_backoff: Backoff) -> Self {
        Self {
            iam,
            verifier,
            verify_backoff,
        }
    }

    async fn require_user(&self, secret: &SecretRef, name: &str) -> Result<IamUser, RotationError> {
        self.iam
            .get_user(name)
            .await?
            .ok_or_else(|| RotationError::UserNotFound {
                secret: secret.name.clone(),
                user: name.to_owned(),
            })
    }

    /// Keys to delete before creating a new one: this secret's superseded keys (the
    /// AWSPREVIOUS key, keys of abandoned attempts) and unmarked keys whose creation
    /// response was lost. Never the AWSCURRENT key, never a key keyrot did not create.
    async fn keys_to_retire<'k>(
        &self,
        secret: &SecretRef,
        current_key: Option<&str>,
        keys: &'k [AccessKeyInfo],
        ledger: &KeyLedger,
    ) -> Result<Vec<(&'k AccessKeyInfo, &'static str)>, RotationError> {
        let mut retire = Vec::new();
        for key in keys {
            if Some(key.id.as_str()) == current_key {
                continue;
            }
            if ledger.is_managed_by(&key.id, &secret.name) {
                retire.push((key, "superseded"));
            } else if !ledger.is_marked(&key.id) && self.is_lost_creation(key, ledger).await? {
                retire.push((key, "creation_response_lost"));
            }
        }
        Ok(retire)
    }

    /// An unmarked key is the product of an interrupted CreateAccessKey if it appeared
    /// during a recorded attempt and nobody has ever used it (nobody but IAM saw its secret).
    async fn is_lost_creation(
        &self,
        key: &AccessKeyInfo,
        ledger: &KeyLedger,
    ) -> Result<bool, RotationError> {
        let Some(created) = key.created else {
            return Ok(false);
        };
        if !ledger
            .intents()
            .iter()
            .any(|intent| intent.could_have_created(&key.id, created))
        {
            return Ok(false);
        }
        Ok(self.iam.key_last_used(&key.id).await?.is_none())
    }

    async fn verify_key(
        &self,
        user: &IamUser,
        key_id: &str,
        secret: &Sensitive,
    ) -> Result<(), RotationError> {
        let started = tokio::time::Instant::now();
        let mut delays = self.verify_backoff.delays();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last_answer = match self.verifier.check(key_id, secret).await {
                KeyCheck::Authenticated { arn } if arn == user.arn => {
                    info!(
                        decision = "key_verified",
                        key_id, attempts, "STS accepted the key as the user"
                    );
                    return Ok(());
                }
                KeyCheck::Authenticated { arn } => {
                    return Err(RotationError::WrongIdentity {
                        key_id: key_id.to_owned(),
                        expected: user.arn.clone(),
                        actual: arn,
                    })
                }
                KeyCheck::Rejected { reason } => reason,
            };
            let Some(delay) = delays.next() else {
                return Err(RotationError::KeyNotVerified {
                    user: user.name.clone(),
                    key_id: key_id.to_owned(),
                    attempts,
                    waited_ms: started.elapsed().as_millis(),
                    last_answer,
                });
            };
            info!(decision = "key_not_yet_accepted", key_id, attempts, reason = %last_answer, retry_in_ms = delay.as_millis() as u64);
            tokio::time::sleep(delay).await;
        }
    }
}

impl<I: IamKeys, V: KeyVerifier> Rotator for IamKeyRotator<I, V> {
    fn kind(&self) -> &'static str {
        KIND
    }

    async fn create(
        &self,
        secret: &SecretRef,
        token: &str,
        current: &Sensitive,
    ) -> Result<Sensitive, RotationError> {
        let current = IamKeySecret::parse(current, &secret.name, Stage::Current.label())?;
        let user = self.require_user(secret, &current.user_name).await?;
        let mark = managed_tag_value(&secret.name, token).ok_or_else(|| {
            RotationError::invalid_value(
                &secret.name,
                Stage::Current.label(),
                KIND,
                "the secret name is too long to mark keys with (at most 180 characters)",
            )
        })?;
        let keys = self.iam.list_access_keys(&user.name).await?;
        let tags = self.iam.list_user_tags(&user.name).await?;
        let ledger = KeyLedger::from_tags(&tags);
        let current_key = current.access_key_id.as_deref();

        let retire = self
            .keys_to_retire(secret, current_key, &keys, &ledger)
            .await?;
        for (key, reason) in &retire {
            self.iam.delete_access_key(&user.name, &key.id).await?;
            info!(decision = "deleted_key", user = %user.name, key_id = %key.id, reason);
        }
        let retired: HashSet<&str> = retire.iter().map(|(key, _)| key.id.as_str()).collect();
        let remaining: Vec<&str> = keys
            .iter()
            .map(|key| key.id.as_str())
            .filter(|id| !retired.contains(id))
            .collect();

        // Drop bookkeeping that no longer describes anything: marks of deleted keys and the
        // intents of earlier attempts (their lost keys were just removed).
        let existing: HashSet<&str> = remaining.iter().copied().collect();
        let mut obsolete = ledger.stale_marks(&secret.name, &existing);
        obsolete.extend(
            ledger
                .intents()
                .iter()
                .map(|i| CreationIntent::tag_key(&i.token)),
        );
        if !obsolete.is_empty() {
            self.iam.untag_user(&user.name, &obsolete).await?;
        }

        if remaining.len() >= KEYS_PER_USER {
            let foreign_keys: Vec<String> = remaining
                .iter()
                .filter(|id| Some(**id) != current_key)
                .map(|id| (*id).to_owned())
                .collect();
            warn!(decision = "no_free_key_slot", user = %user.name, foreign_keys = ?foreign_keys);
            return Err(RotationError::NoFreeKeySlot {
                user: user.name,
                foreign_keys,
            });
        }

        let intent = CreationIntent {
            token: token.to_owned(),
            at: SystemTime::now(),
            keys_before: remaining.iter().map(|id| (*id).to_owned()).collect(),
        };
        self.iam
            .tag_user(
                &user.name,
                &CreationIntent::tag_key(token),
                &intent.tag_value(),
            )
            .await?;
        let new_key = self.iam.create_access_key(&user.name).await?;
        self.iam.tag_user(&user.name, &new_key.id, &mark).await?;
        info!(decision = "created_key", user = %user.name, key_id = %new_key.id);

        Ok(IamKeySecret {
            user_name: user.name,
            access_key_id: Some(new_key.id),
            secret_access_key: Some(new_key.secret.expose().to_owned()),
            created_at: new_key.created_at,
        }
        .to_sensitive())
    }

    async fn set(
        &self,
        secret: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> Result<(), RotationError> {
        let current = IamKeySecret::parse(current, &secret.name, Stage::Current.label())?;
        let pending = IamKeySecret::parse(pending, &secret.name, Stage::Pending.label())?;
        if current.user_name != pending.user_name {
            return Err(RotationError::UserMismatch {
                secret: secret.name.clone(),
                current: current.user_name,
                pending: pending.user_name,
            });
        }
        let Some((key_id, _)) = pending.key() else {
            return Err(RotationError::invalid_value(
                &secret.name,
                Stage::Pending.label(),
                KIND,
                "it holds no access key",
            ));
        };
        let user = self.require_user(secret, &pending.user_name).await?;
        let keys = self.iam.list_access_keys(&user.name).await?;
        if !keys.iter().any(|key| key.id == key_id) {
            return Err(RotationError::KeyNotOwned {
                secret: secret.name.clone(),
                user: user.name,
                key_id: key_id.to_owned(),
            });
        }
        info!(decision = "pending_key_owned_by_user", user = %user.name, key_id);
        Ok(())
    }

    async fn test(&self, secret: &SecretRef, value: &Sensitive) -> Result<(), RotationError> {
        let value = IamKeySecret::parse(value, &secret.name, Stage::Pending.label())?;
        let user = self.require_user(secret, &value.user_name).await?;
        match value.key() {
            Some((key_id, key_secret)) => self.verify_key(&user, key_id, &key_secret).await,
            None => {
                info!(decision = "no_key_to_test", user = %user.name, "secret holds no key yet; the user exists");
                Ok(())
            }
        }
    }

    async fn finished(
        &self,
        secret: &SecretRef,
        token: &str,
        promoted: &Sensitive,
    ) -> Result<(), RotationError> {
        let promoted = IamKeySecret::parse(promoted, &secret.name, Stage::Current.label())?;
        let intent_tag = CreationIntent::tag_key(token);
        let tags = self.iam.list_user_tags(&promoted.user_name).await?;
        if tags.iter().any(|(key, _)| *key == intent_tag) {
            self.iam
                .untag_user(&promoted.user_name, &[intent_tag])
                .await?;
        }
        Ok(())
    }
}
