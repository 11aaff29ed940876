//! Offboarding a user the registry no longer names, without breaking the key lifetime
//! contract: stop serving (the secret is scheduled for deletion, so the API can no longer hand
//! its key out and no rotation can start), keep every key until the last promise made for it
//! has run out, then delete the keys keyrot made, its tags on the user, and the secret.

use super::pacer::{Cost, Pacer};
use super::ports::{FleetSecrets, ListedSecret, Registry, UserPolicies};
use super::report::RunReport;
use super::user_keys::UserKeys;
use super::Fleet;
use crate::iam_key::IamKeys;
use crate::key_slots;
use crate::AwsCallError;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::info;

/// Where an offboarding stands after a run.
pub(super) enum Offboarding {
    Started,
    Waiting,
    Done,
}

impl<R: Registry, S: FleetSecrets + Clone + 'static, I: IamKeys + UserPolicies> Fleet<R, S, I> {
    pub(super) async fn offboard(
        &self,
        secret: &ListedSecret,
        pacer: &mut Pacer,
        report: &mut RunReport,
    ) {
        let Some(user) = self.user_of(&secret.name) else {
            return;
        };
        let result = match secret.deleted {
            None => self.stop_serving(user, secret, pacer).await,
            Some(_) => self.cleanup(user, secret, pacer).await,
        };
        match result {
            Ok(Offboarding::Started) => {
                report.offboarding_started += 1;
                report.offboarding_pending += 1;
            }
            Ok(Offboarding::Waiting) => report.offboarding_pending += 1,
            Ok(Offboarding::Done) => report.offboarded += 1,
            Err(error) => {
                report.offboarding_pending += 1;
                self.failed(&secret.name, &error, report);
            }
        }
    }

    /// Records on each key keyrot made for the secret that it is promised until now + the
    /// interval + the grace, then schedules the secret's deletion. The API's promise for a
    /// key fetched before the deletion ends at most one interval after it, so within the
    /// recorded time as long as the deletion follows within the grace; a run that took longer
    /// leaves the deletion to the next run, which records afresh.
    async fn stop_serving(
        &self,
        user: &str,
        secret: &ListedSecret,
        pacer: &mut Pacer,
    ) -> Result<Offboarding, AwsCallError> {
        if secret.rotating {
            info!(
                decision = "offboarding_waits_for_rotation",
                user,
                secret = %secret.name,
                "a rotation is in progress; offboarding starts once it is over"
            );
            return Ok(Offboarding::Waiting);
        }
        let recorded_at = Instant::now();
        let now = SystemTime::now();
        let mut kept_until = now;
        if let Some(keys) =
            UserKeys::read(&self.iam, user, std::slice::from_ref(&secret.name)).await?
        {
            for (_, mark) in &keys.managed {
                let until = now + self.kept_after_deletion(mark);
                kept_until = kept_until.max(until);
                if mark.until.is_some_and(|recorded| recorded >= until) {
                    continue;
                }
                pacer.pay(Cost::IAM_WRITE).await;
                self.iam
                    .tag_user(user, &mark.tag_key, &mark.with_until(until))
                    .await?;
            }
        }
        if recorded_at.elapsed() > self.config.offboard_grace / 2 {
            return Ok(Offboarding::Waiting);
        }
        pacer.pay(Cost::SECRETS_WRITE).await;
        self.secrets.schedule_deletion(&secret.name).await?;
        info!(
            decision = "offboarding_started",
            user,
            secret = %secret.name,
            keys_kept_until = %crate::time::rfc3339(kept_until),
            "secret no longer served; keys kept until their promise runs out"
        );
        Ok(Offboarding::Started)
    }

    /// Once both slots stopped being served and every promise has run out: deletes the
    /// user's keys, the tags, and the secret.
    pub(super) async fn cleanup(
        &self,
        user: &str,
        secret: &ListedSecret,
        pacer: &mut Pacer,
    ) -> Result<Offboarding, AwsCallError> {
        if let Some(sibling) = key_slots::sibling_name(&self.config.managed_prefix, &secret.name) {
            let served = self
                .secrets
                .describe(&sibling, &self.config.managed_prefix)
                .await?
                .is_some_and(|other| other.deleted.is_none());
            if served {
                info!(decision = "offboarding_waits_for_other_slot", user, secret = %secret.name, "the user's other slot is still served");
                return Ok(Offboarding::Waiting);
            }
        }
        let deleted = secret.deleted.unwrap_or_else(SystemTime::now);
        // The other slot's cleanup may have released the user's keys (and its tag) already.
        let keys = if self.is_enrolled(user).await? {
            UserKeys::read(&self.iam, user, &self.slot_names(user)).await?
        } else {
            None
        };
        if let Some(keys) = &keys {
            // A key without a recorded end (a rotation finished after the record was written)
            // was served at most until the deletion.
            if let Some(until) = keys
                .promised_until(|mark| deleted + self.kept_after_deletion(mark))
                .filter(|until| *until > SystemTime::now())
            {
                info!(
                    decision = "offboarding_waits_for_promise",
                    user,
                    secret = %secret.name,
                    until = %crate::time::rfc3339(until),
                    "keys still promised to clients"
                );
                return Ok(Offboarding::Waiting);
            }
            let deleted_keys = self.release_user(keys, user, pacer).await?;
            info!(decision = "keys_released", user, secret = %secret.name, deleted_keys, "keyrot's keys and tags removed");
        }
        pacer.pay(Cost::SECRETS_WRITE).await;
        self.secrets.purge(&secret.name).await?;
        info!(decision = "user_offboarded", user, secret = %secret.name, "offboarded");
        Ok(Offboarding::Done)
    }
}
