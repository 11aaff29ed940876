//! The IAM access key rotator: creates the user's next key without ever exceeding IAM's two
//! keys, touching the AWSCURRENT key, deleting a key still promised to clients (see
//! [`super::lifetime`]), or touching a key keyrot did not create.

use super::ledger::{
    managed_tag_value, slot_mark_tag_key, slot_mark_value, CreationIntent, KeyLedger,
    MANAGED_USER_TAG,
};
use super::lifetime::{self, Decision, KeyLifetime, Sibling, Slots};
use super::ports::{
    AccessKeyInfo, IamKeys, IamUser, KeyCheck, KeyVerifier, SecretVersions, SiblingSecret,
};
use super::secret::{IamKeySecret, KIND};
use crate::backoff::Backoff;
use crate::key_slots;
use crate::rotation::{RotationError, Rotator, SecretRef, Stage};
use crate::Sensitive;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};
use tracing::{info, warn};

/// STS answers that must agree, one after the other, before a new key counts as working.
const CONSECUTIVE_SUCCESSES: u32 = 3;
/// Longest a step re-reads IAM state that a write of the same step has not reached yet.
const CONSISTENCY_MAX_WAIT: Duration = Duration::from_secs(10);

/// A read retried because IAM had not caught up with a write yet: logged and counted.
fn count_consistency_retry(operation: &str, user: &str, delay: Duration) {
    info!(
        decision = "iam_not_consistent_yet",
        operation,
        user,
        retry_in_ms = delay.as_millis() as u64
    );
    crate::metrics::emit(
        &[("Operation", operation)],
        &[&["Operation"]],
        &[("IamConsistencyRetries", 1.0, crate::metrics::Unit::Count)],
    );
}

fn name_too_long(secret: &SecretRef) -> RotationError {
    RotationError::invalid_value(
        &secret.name,
        Stage::Current.label(),
        KIND,
        "the secret name is too long to mark keys with (an IAM tag value holds 256 characters)",
    )
}

/// How the rotator behaves; read once from the function's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRotationSettings {
    pub verify_backoff: Backoff,
    pub lifetime: KeyLifetime,
    /// Managed secrets are named exactly this prefix followed by the user name.
    pub managed_prefix: String,
}

pub struct IamKeyRotator<I, V, S> {
    iam: I,
    verifier: V,
    versions: S,
    settings: IamRotationSettings,
}

impl<I: IamKeys, V: KeyVerifier, S: SecretVersions> IamKeyRotator<I, V, S> {
    pub fn new(iam: I, verifier: V, versions: S, settings: IamRotationSettings) -> Self {
        Self {
            iam,
            verifier,
            versions,
            settings,
        }
    }

    /// The ledger with only the marks that the slots' own histories confirm. A mark is a user
    /// tag, which anyone with iam:TagUser on the user can write: a forged one must not get a
    /// hand-made key deleted. A mark is confirmed when the version it names (of this secret or
    /// of the other slot's) holds that key, or (an attempt whose PutSecretValue never
    /// happened) is in the secret's history without a value and the key was never used. A
    /// version the history does not list proves nothing: anyone can name one.
    async fn confirmed_ledger(
        &self,
        secrets: &[&str],
        ledger: KeyLedger,
        keys: &[AccessKeyInfo],
        known: &[&str],
    ) -> Result<KeyLedger, RotationError> {
        let mut forged = Vec::new();
        for key in keys {
            if known.contains(&key.id.as_str()) {
                continue;
            }
            for secret in secrets {
                let Some(mark) = ledger.mark_for(&key.id, secret) else {
                    continue;
                };
                let confirmed = match self.versions.version_value(secret, &mark.version).await? {
                    Some(value) => IamKeySecret::parse(&value, secret, "version")
                        .is_ok_and(|value| value.access_key_id.as_deref() == Some(key.id.as_str())),
                    None => {
                        self.versions.version_listed(secret, &mark.version).await?
                            && self.iam.key_last_used(&key.id).await?.is_none()
                    }
                };
                if !confirmed {
                    warn!(decision = "mark_not_confirmed", key_id = %key.id, version = %mark.version, "the key's mark is not backed by the secret's history: treating the key as not keyrot's");
                    forged.push(key.id.clone());
                }
            }
        }
        Ok(ledger.without(&forged))
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
        let expected = key_slots::parse_secret_name(&self.settings.managed_prefix, &secret.name)
            .map(|(user, _)| user);
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

    /// The user must be enrolled (tagged by the fleet for this prefix): the template's IAM
    /// policy refuses the rotation function every other user, and this says so by name.
    fn require_managed(
        &self,
        secret: &SecretRef,
        user: &str,
        tags: &[(String, String)],
    ) -> Result<(), RotationError> {
        let prefix = self.settings.managed_prefix.as_str();
        if tags
            .iter()
            .any(|(key, value)| key == MANAGED_USER_TAG && value == prefix)
        {
            return Ok(());
        }
        Err(RotationError::UserNotManaged {
            secret: secret.name.clone(),
            user: user.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// Unmarked keys that are the product of an interrupted CreateAccessKey.
    async fn lost_creations(
        &self,
        secret: &SecretRef,
        keys: &[AccessKeyInfo],
        ledger: &KeyLedger,
    ) -> Result<HashSet<String>, RotationError> {
        let mut lost = HashSet::new();
        for key in keys {
            if !ledger.is_marked(&key.id) && self.is_lost_creation(secret, key, ledger).await? {
                lost.insert(key.id.clone());
            }
        }
        Ok(lost)
    }

    /// An unmarked key is the product of an interrupted CreateAccessKey if it appeared
    /// during a recorded attempt that never stored a key (its version of the secret has no
    /// value: an attempt that did store one is done, even when its mark was overwritten since,
    /// which a forger can do), and nobody has ever used it (nobody but IAM saw its secret).
    async fn is_lost_creation(
        &self,
        secret: &SecretRef,
        key: &AccessKeyInfo,
        ledger: &KeyLedger,
    ) -> Result<bool, RotationError> {
        let Some(created) = key.created else {
            return Ok(false);
        };
        let mut recorded = false;
        for intent in ledger
            .open_intents()
            .filter(|intent| intent.could_have_created(&key.id, created))
        {
            if self
                .versions
                .version_value(&secret.name, &intent.token)
                .await?
                .is_none()
            {
                recorded = true;
                break;
            }
        }
        if !recorded {
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
            .tag_user(user, &mark.tag_key, &mark.with_until(until))
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
        let mut in_a_row = 0;
        loop {
            attempts += 1;
            let last_answer = match self.verifier.check(key_id, secret).await {
                KeyCheck::Authenticated { arn } if arn == user.arn => {
                    in_a_row += 1;
                    if in_a_row >= CONSECUTIVE_SUCCESSES {
                        info!(
                            decision = "key_verified",
                            key_id,
                            attempts,
                            "STS accepted the key as the user, several times in a row"
                        );
                        return Ok(());
                    }
                    // One STS endpoint knowing the key does not mean all of them do yet.
                    tokio::time::sleep(self.settings.verify_backoff.initial).await;
                    continue;
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
            in_a_row = 0;
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

    /// IAM is eventually consistent: a read just after a write may not show it yet. Such reads
    /// are retried briefly (the verification backoff, at most 10 s), and counted.
    fn consistency_backoff(&self) -> Backoff {
        Backoff {
            max_wait: self
                .settings
                .verify_backoff
                .max_wait
                .min(CONSISTENCY_MAX_WAIT),
            ..self.settings.verify_backoff
        }
    }

    /// The user's keys, re-read while `key_id` is not among them yet.
    async fn keys_including(
        &self,
        user: &str,
        key_id: &str,
    ) -> Result<Vec<AccessKeyInfo>, RotationError> {
        let mut delays = self.consistency_backoff().delays();
        loop {
            let keys = self.iam.list_access_keys(user).await?;
            if keys.iter().any(|key| key.id == key_id) {
                return Ok(keys);
            }
            let Some(delay) = delays.next() else {
                return Ok(keys);
            };
            count_consistency_retry("ListAccessKeys", user, delay);
            tokio::time::sleep(delay).await;
        }
    }

    /// CreateAccessKey, retried while IAM still counts a key deleted a moment ago
    /// (LimitExceeded: no key was made, so a retry cannot make two).
    async fn create_after_deletions(
        &self,
        user: &str,
    ) -> Result<super::ports::NewAccessKey, RotationError> {
        let mut delays = self.consistency_backoff().delays();
        loop {
            match self.iam.create_access_key(user).await {
                Ok(key) => return Ok(key),
                Err(error) if error.has_code("LimitExceeded") => {
                    let Some(delay) = delays.next() else {
                        return Err(error.into());
                    };
                    count_consistency_retry("CreateAccessKey", user, delay);
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Deletes a key and says why.
    async fn retire(&self, user: &str, key_id: &str, reason: &str) -> Result<(), RotationError> {
        self.iam.delete_access_key(user, key_id).await?;
        info!(decision = "deleted_key", user, key_id, reason);
        Ok(())
    }

    /// One secret: the interval a carried-forward key is handed out under, never shorter
    /// than the one its earlier fetches got.
    fn carried_interval_seconds(&self, current: &IamKeySecret) -> u64 {
        self.settings
            .lifetime
            .interval
            .as_secs()
            .max(current.interval_seconds.unwrap_or_default())
    }

    /// The other slot's secret and its AWSCURRENT value, when the user has two slots.
    async fn sibling(
        &self,
        secret: &SecretRef,
        user: &str,
    ) -> Result<Option<(String, SiblingSecret, Option<IamKeySecret>)>, RotationError> {
        let Some(name) = key_slots::sibling_name(&self.settings.managed_prefix, &secret.name)
        else {
            return Ok(None);
        };
        let Some(state) = self.versions.sibling(&name).await? else {
            return Ok(None);
        };
        let sibling_ref = SecretRef {
            arn: name.clone(),
            name: name.clone(),
            last_rotated: state.last_rotated,
        };
        // A value that does not parse, or names another user, holds no key of this user's.
        let value = state
            .current
            .as_ref()
            .and_then(|value| self.parse_value(&sibling_ref, value, Stage::Current).ok())
            .filter(|value| value.user_name == user);
        Ok(Some((name, state, value)))
    }

    /// Whether the other slot's rotation under way may change the key it serves. One whose
    /// AWSPENDING already holds its current key carries that key forward: the key it serves,
    /// and when that key became current (`CurrentSince` is carried too), stay as they are. One
    /// with no readable AWSPENDING value yet, or another key, may retire and mint.
    fn may_change_their_key(
        &self,
        sibling: &str,
        state: &SiblingSecret,
        their_key: Option<&str>,
    ) -> bool {
        if !state.rotating {
            return false;
        }
        let sibling_ref = SecretRef {
            arn: sibling.to_owned(),
            name: sibling.to_owned(),
            last_rotated: state.last_rotated,
        };
        let pending_key = state
            .pending
            .as_ref()
            .and_then(|value| self.parse_value(&sibling_ref, value, Stage::Pending).ok())
            .and_then(|value| value.access_key_id);
        their_key.is_none() || pending_key.as_deref() != their_key
    }

    /// When the key this slot keeps is retired: its recorded tick while that is still ahead,
    /// else the first tick of the slot at least an interval from now (one-secret values, whose
    /// fetches were promised their recorded interval, get at least that).
    fn kept_until(
        &self,
        secret: &SecretRef,
        current: &IamKeySecret,
        now: SystemTime,
    ) -> Option<SystemTime> {
        if let Some(at) = current.expires().filter(|at| *at > now) {
            return Some(at);
        }
        let interval = self.settings.lifetime.interval;
        let promised = match current.expires() {
            Some(_) => interval,
            None => interval.max(key_slots::governing_interval(
                current.interval_seconds,
                interval,
            )),
        };
        key_slots::Schedule::of(&self.settings.managed_prefix, &secret.name, interval)?
            .first_at_or_after(now.checked_add(promised)?)
    }
}

/// Whether the other slot's key has taken over from ours: it is newer (IAM's creation
/// times), the other slot is not rotating to another key, and its key became current
/// (`current_since`, an upper bound) at least `slack` ago. The API hands our key out until then, promising at
/// least `slack` past each fetch, so that promise has run out too.
fn supersedes(
    keys: &[AccessKeyInfo],
    theirs: Option<&str>,
    ours: Option<&str>,
    their_key_may_change: bool,
    current_since: Option<SystemTime>,
    slack: Duration,
    now: SystemTime,
) -> bool {
    let created = |id: &str| keys.iter().find(|key| key.id == id)?.created;
    let newer = match (theirs.and_then(created), ours) {
        (Some(theirs), Some(ours)) => created(ours).is_some_and(|ours| theirs > ours),
        (Some(_), None) => true,
        (None, _) => false,
    };
    let settled = !their_key_may_change
        && current_since
            .and_then(|at| at.checked_add(slack))
            .is_some_and(|at| at <= now);
    newer && settled
}

impl<I: IamKeys, V: KeyVerifier, S: SecretVersions> Rotator for IamKeyRotator<I, V, S> {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn counts_versions(&self, _secret_name: &str) -> bool {
        true
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
        let mark = managed_tag_value(&secret.name, token, self.settings.lifetime.interval)
            .ok_or_else(|| name_too_long(secret))?;
        let keys = self.iam.list_access_keys(&user.name).await?;
        let tags = self.iam.list_user_tags(&user.name).await?;
        self.require_managed(secret, &user.name, &tags)?;
        let sibling = self.sibling(secret, &user.name).await?;
        let current_key = current.access_key_id.as_deref();
        let previous_key = previous
            .as_ref()
            .and_then(|value| Some((value.access_key_id.as_deref()?, value.interval())))
            .filter(|(id, _)| Some(*id) != current_key);
        let their_value = sibling.as_ref().and_then(|(_, _, value)| value.as_ref());
        let their_key = their_value.and_then(|value| value.access_key_id.as_deref());
        let known: Vec<&str> = current_key
            .into_iter()
            .chain(previous_key.map(|(id, _)| id))
            .chain(their_key)
            .collect();
        let mut marked_for = vec![secret.name.as_str()];
        marked_for.extend(sibling.as_ref().map(|(name, _, _)| name.as_str()));
        let ledger = self
            .confirmed_ledger(
                &marked_for,
                KeyLedger::from_tags_and_keys(&tags, &keys),
                &keys,
                &known,
            )
            .await?;
        let lost = self.lost_creations(secret, &keys, &ledger).await?;
        let slack = key_slots::slack(self.settings.lifetime.interval);
        let mut now = SystemTime::now();
        // When their key became current, at the latest: recorded by a carry-forward, else the
        // completion of the rotation that made their current version.
        let their_since = sibling.as_ref().and_then(|(_, state, _)| {
            their_value
                .and_then(IamKeySecret::current_since)
                .or(state.last_rotated)
        });
        let their_key_may_change = sibling
            .as_ref()
            .is_some_and(|(name, state, _)| self.may_change_their_key(name, state, their_key));
        // The other slot's late tick minted its key moments ago: ours is retired once that key
        // has been current for the slack (at most the slack away, at most 60 s), instead of
        // waiting two intervals for our next tick.
        let due = current.expires().is_some_and(|at| at <= now);
        if let Some(settle_at) = their_since.and_then(|since| since.checked_add(slack)) {
            let wait = settle_at.duration_since(now).unwrap_or_default();
            if due
                && !wait.is_zero()
                && wait <= slack
                && !their_key_may_change
                && supersedes(
                    &keys,
                    their_key,
                    current_key,
                    false,
                    their_since,
                    slack,
                    settle_at,
                )
            {
                info!(decision = "waiting_for_takeover", user = %user.name, wait_ms = wait.as_millis() as u64, "the other slot's new key took over moments ago");
                tokio::time::sleep(wait).await;
                now = SystemTime::now();
            }
        }
        let sibling_slot = sibling.as_ref().map(|(name, _, _)| Sibling {
            secret: name.as_str(),
            current_key: their_key,
            supersedes_ours: supersedes(
                &keys,
                their_key,
                current_key,
                their_key_may_change,
                their_since,
                slack,
                now,
            ),
            our_retirement: current.expires(),
        });
        let plan = lifetime::plan(
            &Slots {
                secret: &secret.name,
                keys: &keys,
                ledger: &ledger,
                current_key,
                previous_key,
                lost: &lost,
                sibling: sibling_slot,
            },
            &self.settings.lifetime,
            now,
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

        // Drop bookkeeping that no longer describes anything: marks of deleted keys stored
        // under their key ids, and intents (their lost keys were just removed). A slot's mark
        // stays: the slot's next attempt overwrites it, at no extra write.
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

        match plan.decision {
            Decision::Mint => {}
            Decision::KeepCurrent { reason } => {
                let now = SystemTime::now();
                let until = self.kept_until(secret, &current, now);
                info!(decision = "carried_forward", reason, user = %user.name, key_id = current_key.unwrap_or_default(), retired_at = ?until.map(crate::time::rfc3339), "this slot's key stays: the new version holds it again");
                // The key has been current since the rotation that made this version, or earlier.
                let current_since = current
                    .current_since
                    .clone()
                    .or(secret.last_rotated.map(crate::time::rfc3339));
                return Ok(IamKeySecret {
                    expires_at: until.map(crate::time::rfc3339),
                    current_since,
                    ..current
                }
                .to_sensitive());
            }
            Decision::CarryForward {
                promised_key,
                until,
            } => {
                info!(decision = "carried_forward", user = %user.name, key_id = current_key.unwrap_or_default(), promised_key = %promised_key, promised_until = %crate::time::rfc3339(until), "every slot holds a key still promised to clients: the current key carries on");
                return Ok(IamKeySecret {
                    interval_seconds: Some(self.carried_interval_seconds(&current)),
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

        // The attempt is recorded before the key exists, so that a lost response is
        // recognised. A slot's mark is that record: written once, under the slot's tag key
        // (overwriting the mark of the key this tick retired), it names the key that appears
        // next ([`KeyLedger::from_tags_and_keys`]). A one-secret user's superseded key
        // outlives the next key, so its keys keep an intent and a mark each.
        let slot = sibling
            .as_ref()
            .and_then(|_| key_slots::parse_secret_name(&self.settings.managed_prefix, &secret.name))
            .map(|(_, slot)| slot);
        let keys_before: Vec<String> = remaining.iter().map(|id| (*id).to_owned()).collect();
        let new_key = match slot {
            Some(slot) => {
                let value = slot_mark_value(
                    &secret.name,
                    token,
                    self.settings.lifetime.interval,
                    SystemTime::now(),
                    &keys_before,
                )
                .ok_or_else(|| name_too_long(secret))?;
                self.iam
                    .tag_user(&user.name, &slot_mark_tag_key(slot), &value)
                    .await?;
                self.create_after_deletions(&user.name).await?
            }
            None => {
                let intent = CreationIntent {
                    token: token.to_owned(),
                    at: SystemTime::now(),
                    keys_before,
                };
                self.iam
                    .tag_user(
                        &user.name,
                        &CreationIntent::tag_key(token),
                        &intent.tag_value(),
                    )
                    .await?;
                let new_key = self.create_after_deletions(&user.name).await?;
                self.iam.tag_user(&user.name, &new_key.id, &mark).await?;
                new_key
            }
        };
        info!(decision = "created_key", user = %user.name, key_id = %new_key.id);

        // A fresh key is handed out under the configured interval, whatever the last one had.
        let interval = self.settings.lifetime.interval;
        let expires_at = match &sibling {
            Some(_) => key_slots::retirement(
                &self.settings.managed_prefix,
                &secret.name,
                interval,
                SystemTime::now(),
            ),
            None => None,
        };
        Ok(IamKeySecret {
            user_name: user.name,
            access_key_id: Some(new_key.id),
            secret_access_key: Some(new_key.secret.expose().to_owned()),
            created_at: new_key.created_at,
            interval_seconds: Some(interval.as_secs()),
            expires_at: expires_at.map(crate::time::rfc3339),
            current_since: None,
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
        let keys = self.keys_including(&user.name, key_id).await?;
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
        // A slot's key is retired at its tick (createSecret deleted the superseded key before
        // minting) or carried forward: no promise is left to record, and no intent to remove.
        if promoted.expires().is_some() {
            return Ok(());
        }
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
