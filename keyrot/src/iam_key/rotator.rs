//! The IAM access key rotator: creates the user's next key without ever exceeding IAM's two
//! keys, touching the AWSCURRENT key, deleting a key still promised to clients (see
//! [`super::lifetime`]), or touching a key keyrot did not create.

use super::ledger::{managed_tag_value, CreationIntent, KeyLedger};
use super::lifetime::{self, Decision, KeyLifetime, Slots};
use super::ports::{AccessKeyInfo, IamKeys, IamUser, KeyCheck, KeyVerifier};
use super::secret::{IamKeySecret, KIND};
use crate::backoff::Backoff;
use crate::rotation::{RotationError, Rotator, SecretRef, Stage};
use crate::Sensitive;
use std::collections::HashSet;
use std::time::SystemTime;
use tracing::{info, warn};

/// How the rotator behaves; read once from the function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRotationSettings {
    pub verify_backoff: Backoff,
    pub lifetime: KeyLifetime,
    /// Managed secrets are named exactly this prefix followed by the user name.
    pub managed_prefix: String,
}

pub struct IamKeyRotator<I, V> {
    iam: I,
    verifier: V,
    settings: IamRotationSettings,
}

impl<I: IamKeys, V: KeyVerifier> IamKeyRotator<I, V> {
    pub fn new(iam: I, verifier: V, settings: IamRotationSettings) -> Self {
        Self {
            iam,
            verifier,
            settings,
        }
    }

    /// Parses a value of `secret` and refuses one naming another user than the secret's name
    /// does: whoever can write a secret under the prefix must not get another user's key.
    fn parse_value(
        &self,
        secret: &SecretRef,
        value: &Sensitive,
        stage: Stage,
    ) -> Result<IamKeySecret, RotationError> {
        let parsed = IamKeySecret::parse(value, &secret.name, stage.label())?;
        let expected = secret
            .name
            .strip_prefix(self.settings.managed_prefix.as_str());
        if expected != Some(parsed.user_name.as_str()) {
            return Err(RotationError::SecretNameMismatch {
                secret: secret.name.clone(),
                user: parsed.user_name,
                prefix: self.settings.managed_prefix.clone(),
            });
        }
        Ok(parsed)
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

    /// Unmarked keys that are the product of an interrupted CreateAccessKey.
    async fn lost_creations(
        &self,
        keys: &[AccessKeyInfo],
        ledger: &KeyLedger,
    ) -> Result<HashSet<String>, RotationError> {
        let mut lost = HashSet::new();
        for key in keys {
            if !ledger.is_marked(&key.id) && self.is_lost_creation(key, ledger).await? {
                lost.insert(key.id.clone());
            }
        }
        Ok(lost)
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

    /// Records when a superseded key's promise ends, in its mark.
    async fn record_promise(
        &self,
        user: &str,
        secret: &SecretRef,
        ledger: &KeyLedger,
        key_id: &str,
        until: SystemTime,
    ) -> Result<(), RotationError> {
        let Some(mark) = ledger.mark_for(key_id, &secret.name) else {
            return Ok(());
        };
        self.iam
            .tag_user(user, key_id, &mark.with_until(until))
            .await?;
        info!(decision = "promise_recorded", user, key_id, until = %crate::time::rfc3339(until));
        Ok(())
    }

    async fn verify_key(
        &self,
        user: &IamUser,
        key_id: &str,
        secret: &Sensitive,
    ) -> Result<(), RotationError> {
        let started = tokio::time::Instant::now();
        let mut delays = self.settings.verify_backoff.delays();
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

    /// Deletes a key and says why.
    async fn retire(&self, user: &str, key_id: &str, reason: &str) -> Result<(), RotationError> {
        self.iam.delete_access_key(user, key_id).await?;
        info!(decision = "deleted_key", user, key_id, reason);
        Ok(())
    }

    /// The interval the new version is handed out under: never shorter than the current
    /// key's, so that a carried-forward key keeps the promise its earlier fetches got.
    fn interval_seconds(&self, current: &IamKeySecret) -> u64 {
        self.settings
            .lifetime
            .interval
            .as_secs()
            .max(current.interval_seconds.unwrap_or_default())
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
        previous: Option<&Sensitive>,
    ) -> Result<Sensitive, RotationError> {
        let current = self.parse_value(secret, current, Stage::Current)?;
        // AWSPREVIOUS only matters for its key; a value that does not parse has none to keep.
        let previous =
            previous.and_then(|value| self.parse_value(secret, value, Stage::Previous).ok());
        let user = self.require_user(secret, &current.user_name).await?;
        let mark = managed_tag_value(&secret.name, token).ok_or_else(|| {
            RotationError::invalid_value(
                &secret.name,
                Stage::Current.label(),
                KIND,
                "the secret name is too long to mark keys with (at most 170 characters)",
            )
        })?;
        let keys = self.iam.list_access_keys(&user.name).await?;
        let tags = self.iam.list_user_tags(&user.name).await?;
        let ledger = KeyLedger::from_tags(&tags);
        let current_key = current.access_key_id.as_deref();
        let previous_key = previous
            .as_ref()
            .and_then(|value| Some((value.access_key_id.as_deref()?, value.interval())))
            .filter(|(id, _)| Some(*id) != current_key);
        let lost = self.lost_creations(&keys, &ledger).await?;
        let plan = lifetime::plan(
            &Slots {
                secret: &secret.name,
                keys: &keys,
                ledger: &ledger,
                current_key,
                previous_key,
                lost: &lost,
            },
            &self.settings.lifetime,
            SystemTime::now(),
        );

        for (key_id, until) in &plan.record {
            self.record_promise(&user.name, secret, &ledger, key_id, *until)
                .await?;
        }
        if let Some(until) = plan.wait_until {
            let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
            info!(decision = "waiting_for_promise", user = %user.name, wait_ms = wait.as_millis() as u64, "a superseded key's promise is about to end");
            tokio::time::sleep(wait).await;
        }
        for (key_id, reason) in &plan.retire {
            self.retire(&user.name, key_id, reason).await?;
        }

        // Drop bookkeeping that no longer describes anything: marks of deleted keys and the
        // intents of earlier attempts (their lost keys were just removed).
        let retired: HashSet<&str> = plan.retire.iter().map(|(id, _)| id.as_str()).collect();
        let remaining: Vec<&str> = keys
            .iter()
            .map(|key| key.id.as_str())
            .filter(|id| !retired.contains(id))
            .collect();
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

        let interval_seconds = Some(self.interval_seconds(&current));
        match plan.decision {
            Decision::Mint => {}
            Decision::CarryForward {
                promised_key,
                until,
            } => {
                info!(decision = "carried_forward", user = %user.name, key_id = current_key.unwrap_or_default(), promised_key = %promised_key, promised_until = %crate::time::rfc3339(until), "every slot holds a key still promised to clients: the current key carries on");
                return Ok(IamKeySecret {
                    interval_seconds,
                    ..current
                }
                .to_sensitive());
            }
            Decision::NoFreeSlot {
                foreign_keys,
                promised_keys,
            } => {
                warn!(decision = "no_free_key_slot", user = %user.name, foreign_keys = ?foreign_keys, promised_keys = ?promised_keys);
                return Err(RotationError::NoFreeKeySlot {
                    user: user.name,
                    foreign_keys,
                });
            }
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
            interval_seconds,
        }
        .to_sensitive())
    }

    async fn set(
        &self,
        secret: &SecretRef,
        current: &Sensitive,
        pending: &Sensitive,
    ) -> Result<(), RotationError> {
        let current = self.parse_value(secret, current, Stage::Current)?;
        let pending = self.parse_value(secret, pending, Stage::Pending)?;
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
        let value = self.parse_value(secret, value, Stage::Pending)?;
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
        superseded: Option<&Sensitive>,
    ) -> Result<(), RotationError> {
        let promoted = self.parse_value(secret, promoted, Stage::Current)?;
        let user = promoted.user_name.as_str();
        let intent_tag = CreationIntent::tag_key(token);
        let tags = self.iam.list_user_tags(user).await?;
        if tags.iter().any(|(key, _)| *key == intent_tag) {
            self.iam.untag_user(user, &[intent_tag]).await?;
        }
        // The superseded key was handed out until just now: its promise ends one interval
        // from now. Recorded once; a retried finishSecret leaves the first record alone.
        let superseded =
            superseded.and_then(|value| self.parse_value(secret, value, Stage::Previous).ok());
        let Some(superseded) = superseded else {
            return Ok(());
        };
        let Some(key_id) = superseded
            .access_key_id
            .as_deref()
            .filter(|id| Some(*id) != promoted.access_key_id.as_deref())
        else {
            return Ok(());
        };
        let ledger = KeyLedger::from_tags(&tags);
        if ledger
            .mark_for(key_id, &secret.name)
            .is_some_and(|mark| mark.until.is_none())
        {
            let until = self
                .settings
                .lifetime
                .promise_end(SystemTime::now(), superseded.interval())
                .unwrap_or_else(SystemTime::now);
            self.record_promise(user, secret, &ledger, key_id, until)
                .await?;
        }
        Ok(())
    }
}
