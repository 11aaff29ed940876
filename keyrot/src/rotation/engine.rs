//! The protocol itself: entry checks, then createSecret / setSecret / testSecret /
//! finishSecret, as Secrets Manager drives them, with every step safe to repeat.

use super::store::{SecretDescription, SecretStore, Stage};
use super::{RotationError, RotationRequest, Rotator, SecretRef, Step};
use crate::Sensitive;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// What a step did, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// The token is already AWSCURRENT: the rotation finished earlier.
    AlreadyCurrent,
    /// createSecret retried after the pending value was stored: nothing to do.
    PendingAlreadyCreated,
    Created,
    Set,
    Tested,
    Finished,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AlreadyCurrent => "already_current",
            Self::PendingAlreadyCreated => "pending_already_created",
            Self::Created => "created",
            Self::Set => "set",
            Self::Tested => "tested",
            Self::Finished => "finished",
        }
    }
}

/// How long Secrets Manager keeps every version of a secret, whatever its number.
pub const VERSION_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Secrets Manager's quota of versions per secret ("Versions of a secret: ~100").
pub const VERSION_LIMIT: usize = 100;

pub struct RotationEngine<S, R> {
    pub(super) store: S,
    rotator: R,
    version_retention: Duration,
    version_limit: usize,
}

impl<S: SecretStore, R: Rotator> RotationEngine<S, R> {
    pub fn new(store: S, rotator: R) -> Self {
        Self {
            store,
            rotator,
            version_retention: VERSION_RETENTION,
            version_limit: VERSION_LIMIT,
        }
    }

    /// Refuses a rotation before it makes anything once the secret keeps `limit` versions
    /// (the local stack's own limit, where moto stands for AWS).
    pub fn with_version_limit(mut self, limit: usize) -> Self {
        self.version_limit = limit;
        self
    }

    /// Counts versions kept for `retention` instead of AWS's 24 hours (compressed local time,
    /// where the interval stands for a longer one).
    pub fn with_version_retention(mut self, retention: Duration) -> Self {
        self.version_retention = retention;
        self
    }

    pub fn rotator(&self) -> &R {
        &self.rotator
    }

    pub async fn run(&self, request: &RotationRequest) -> Result<StepOutcome, RotationError> {
        let id = request.secret_id.as_str();
        let token = request.token.as_str();
        let description = self.store.describe(id).await?;
        let secret = SecretRef {
            arn: description.arn.clone(),
            name: description.name.clone(),
            last_rotated: description.last_rotated,
        };
        if !description.rotation_enabled {
            return Err(RotationError::RotationDisabled {
                secret: secret.name,
            });
        }
        let Some(stages) = description.stages_of(token) else {
            return Err(RotationError::UnknownVersion {
                secret: secret.name,
                token: token.to_owned(),
            });
        };
        if description.has_stage(token, Stage::Current) {
            if request.step == Step::Finish {
                // A finishSecret retried after the label move: complete what may not have run.
                let superseded = match description.versions_with(Stage::Previous).first() {
                    Some(version) => {
                        self.store
                            .get_value(id, Some(version), Stage::Previous)
                            .await?
                    }
                    None => None,
                };
                self.complete_finish(id, &secret, token, &description, None, superseded.as_ref())
                    .await?;
            }
            info!(
                decision = "already_current",
                "version is already AWSCURRENT; nothing to do"
            );
            return Ok(StepOutcome::AlreadyCurrent);
        }
        if !description.has_stage(token, Stage::Pending) {
            return Err(RotationError::NotPending {
                secret: secret.name,
                token: token.to_owned(),
                stages: stages.to_vec(),
            });
        }
        match request.step {
            Step::Create => self.create(id, &secret, token, &description).await,
            Step::Set => self.set(id, &secret, token).await,
            Step::Test => self.test(id, &secret, token).await,
            Step::Finish => self.finish(id, &secret, token, &description).await,
        }
    }

    async fn create(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
        description: &SecretDescription,
    ) -> Result<StepOutcome, RotationError> {
        if self
            .store
            .get_value(id, Some(token), Stage::Pending)
            .await?
            .is_some()
        {
            info!(
                decision = "pending_exists",
                "pending version already has a value"
            );
            return Ok(StepOutcome::PendingAlreadyCreated);
        }
        // Counted before anything is made: at the limit PutSecretValue would be refused after
        // the new key exists, and every reattempt would make (and mail about) another.
        let kept = self.kept_versions(id, secret).await;
        if let Some(kept) = kept.filter(|kept| *kept >= self.version_limit) {
            return Err(self
                .refuse_at_version_limit(id, secret, token, description, kept)
                .await);
        }
        let current = self.current_value(id, secret).await?;
        let previous = self.store.get_value(id, None, Stage::Previous).await?;
        let pending = self
            .rotator
            .create(secret, token, &current, previous.as_ref())
            .await?;
        self.store
            .put_pending(id, token, &pending)
            .await
            .map_err(|error| {
                if error.has_code("LimitExceededException") {
                    RotationError::VersionLimitReached {
                        secret: secret.name.clone(),
                        aws_message: error.to_string(),
                        reattempt: false,
                    }
                } else {
                    RotationError::Aws(error)
                }
            })?;
        info!(
            decision = "pending_stored",
            "stored the new value as AWSPENDING"
        );
        if let Some(kept) = kept {
            // This rotation's version is one more.
            report_version_count(kept.saturating_add(1));
        }
        Ok(StepOutcome::Created)
    }

    /// The refusal at the version limit, made before any key exists. The first refusal of a
    /// rotation marks its version (a staging label: no new version) and is mailed; Secrets
    /// Manager's reattempts of the same rotation find the mark and are only logged.
    async fn refuse_at_version_limit(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
        description: &SecretDescription,
        kept: usize,
    ) -> RotationError {
        let already_refused = description.has_stage(token, Stage::VersionLimitRefused);
        if !already_refused {
            let marked_elsewhere = description
                .versions_with(Stage::VersionLimitRefused)
                .first()
                .map(|version| (*version).to_owned());
            if let Err(error) = self
                .store
                .move_stage(
                    id,
                    Stage::VersionLimitRefused,
                    Some(token),
                    marked_elsewhere.as_deref(),
                )
                .await
            {
                // Unmarked, a reattempt is mailed again: noisy, not unsafe.
                warn!(decision = "version_limit_not_marked", secret = %secret.name, error = %error);
            }
        }
        report_version_count(kept);
        RotationError::VersionLimitReached {
            secret: secret.name.clone(),
            aws_message: format!(
                "{kept} versions kept (labelled, or younger than {} s), at most {}",
                self.version_retention.as_secs(),
                self.version_limit
            ),
            reattempt: already_refused,
        }
    }

    async fn set(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
    ) -> Result<StepOutcome, RotationError> {
        let current = self.current_value(id, secret).await?;
        let pending = self.pending_value(id, secret, token).await?;
        self.rotator.set(secret, &current, &pending).await?;
        Ok(StepOutcome::Set)
    }

    async fn test(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
    ) -> Result<StepOutcome, RotationError> {
        // With RotateImmediately=false Secrets Manager runs testSecret alone, possibly
        // before any pending value exists: then the configuration is tested on AWSCURRENT.
        let value = match self
            .store
            .get_value(id, Some(token), Stage::Pending)
            .await?
        {
            Some(pending) => pending,
            None => {
                info!(
                    decision = "test_current",
                    "no pending value; testing AWSCURRENT"
                );
                self.current_value(id, secret).await?
            }
        };
        self.rotator.test(secret, &value).await?;
        Ok(StepOutcome::Tested)
    }

    async fn finish(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
        description: &SecretDescription,
    ) -> Result<StepOutcome, RotationError> {
        // Fail before touching labels if the new version was never created. Its value is the
        // promoted one: the label move does not change it, so it is not read again.
        let promoted = self.pending_value(id, secret, token).await?;
        let superseded = self.current_value(id, secret).await?;
        let previous_current = description
            .versions_with(Stage::Current)
            .into_iter()
            .find(|version| *version != token);
        // Secrets Manager moves AWSPREVIOUS to the version AWSCURRENT leaves.
        self.store
            .move_stage(id, Stage::Current, Some(token), previous_current)
            .await?;
        info!(
            decision = "promoted",
            previous_version = previous_current.unwrap_or("none"),
            "moved AWSCURRENT to the new version"
        );
        self.complete_finish(
            id,
            secret,
            token,
            description,
            Some(promoted),
            Some(&superseded),
        )
        .await?;
        if description.has_stage(token, Stage::VersionLimitRefused) {
            // A reattempt got through once versions aged out: the mark has done its work, and
            // a labelled version is one Secrets Manager never removes.
            self.store
                .move_stage(id, Stage::VersionLimitRefused, None, Some(token))
                .await?;
        }
        Ok(StepOutcome::Finished)
    }

    /// Every rotation adds a version, and Secrets Manager keeps each one for 24 hours: the
    /// versions it may not remove yet, counted before a rotation makes anything; `None` when
    /// this kind does not count or the count failed (the rotation goes on; Secrets Manager
    /// still refuses at its limit).
    async fn kept_versions(&self, id: &str, secret: &SecretRef) -> Option<usize> {
        if !self.rotator.counts_versions(&secret.name) {
            return None;
        }
        let kept_since = SystemTime::now()
            .checked_sub(self.version_retention)
            .unwrap_or(UNIX_EPOCH);
        match self.store.count_kept_versions(id, kept_since).await {
            Ok(count) => Some(count),
            Err(error) => {
                warn!(decision = "versions_not_counted", secret = %secret.name, error = %error);
                None
            }
        }
    }

    /// The part of finishSecret after the promotion: no version but the promoted one may keep
    /// AWSPENDING, or the next RotateSecret is refused as "rotation in progress"; then the
    /// kind's own tidy-up. `promoted` is the promoted version's value when the caller has it.
    async fn complete_finish(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
        description: &SecretDescription,
        promoted: Option<Sensitive>,
        superseded: Option<&Sensitive>,
    ) -> Result<(), RotationError> {
        // AWSPENDING on the promoted version ends the rotation as far as Secrets Manager is
        // concerned (it moves the label on at the next RotateSecret), so that version keeps
        // it: one label move per finishSecret, and no race with a RotateSecret accepted the
        // moment AWSCURRENT moved. A stray AWSPENDING elsewhere would block the next rotation.
        for version in description.versions_with(Stage::Pending) {
            if version == token {
                continue;
            }
            match self
                .store
                .move_stage(id, Stage::Pending, None, Some(version))
                .await
            {
                Ok(()) => info!(
                    decision = "pending_label_removed",
                    pending_version = version
                ),
                // Already moved on by a newer RotateSecret: nothing left to remove.
                Err(error) if error.has_code("InvalidParameterException") => {
                    info!(decision = "pending_label_gone", pending_version = version)
                }
                Err(error) => return Err(error.into()),
            }
        }
        let promoted = match promoted {
            Some(value) => value,
            None => self
                .store
                .get_value(id, Some(token), Stage::Current)
                .await?
                .ok_or_else(|| RotationError::MissingValue {
                    secret: secret.name.clone(),
                    stage: Stage::Current.label(),
                })?,
        };
        self.rotator
            .finished(secret, token, &promoted, superseded)
            .await
    }

    async fn current_value(
        &self,
        id: &str,
        secret: &SecretRef,
    ) -> Result<Sensitive, RotationError> {
        self.store
            .get_value(id, None, Stage::Current)
            .await?
            .ok_or_else(|| RotationError::MissingValue {
                secret: secret.name.clone(),
                stage: Stage::Current.label(),
            })
    }

    async fn pending_value(
        &self,
        id: &str,
        secret: &SecretRef,
        token: &str,
    ) -> Result<Sensitive, RotationError> {
        self.store
            .get_value(id, Some(token), Stage::Pending)
            .await?
            .ok_or_else(|| RotationError::MissingValue {
                secret: secret.name.clone(),
                stage: Stage::Pending.label(),
            })
    }
}

/// The versions Secrets Manager keeps for this secret, so that an alarm fires well before
/// rotations are refused.
fn report_version_count(count: usize) {
    info!(
        decision = "versions_counted",
        versions = count,
        "versions Secrets Manager keeps: labelled, or younger than its retention"
    );
    crate::metrics::emit(
        &[],
        &[&[]],
        &[(
            "SecretVersionCount",
            count as f64,
            crate::metrics::Unit::Count,
        )],
    );
}
