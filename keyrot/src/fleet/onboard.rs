//! Onboarding a registry user: tag the user (what scopes the rotation function's IAM rights),
//! create the secret, lock its reads to keyrot, enable rotation (which rotates at once). Each
//! step is repeated harmlessly by the next run if the run stops after it.

use super::pacer::{Cost, Pacer};
use super::ports::{FleetSecrets, ListedSecret, Registry, UserPolicies, MANAGED_USER_TAG};
use super::report::RunReport;
use super::starts::Starts;
use super::user_keys::UserKeys;
use super::Fleet;
use crate::iam_key::IamKeys;
use crate::key_slots::Slot;
use crate::AwsCallError;
use std::time::SystemTime;
use tracing::{info, warn};

enum Onboarded {
    Done,
    Adopted,
    Restored,
    Pending,
}

impl<R: Registry, S: FleetSecrets + Clone + 'static, I: IamKeys + UserPolicies> Fleet<R, S, I> {
    pub(super) async fn onboard(
        &self,
        user: &str,
        slot: Slot,
        existing: Option<&ListedSecret>,
        pacer: &mut Pacer,
        starts: &mut Starts<S>,
        report: &mut RunReport,
    ) {
        let secret = self.secret_name(user, slot);
        match self
            .onboard_steps(user, slot, &secret, existing, pacer, starts, report)
            .await
        {
            Ok(Onboarded::Done) => report.onboarded += 1,
            Ok(Onboarded::Adopted) => report.adopted += 1,
            Ok(Onboarded::Restored) => report.restored += 1,
            Ok(Onboarded::Pending) => report.onboarding_pending += 1,
            Err(error) => {
                report.onboarding_pending += 1;
                self.failed(&secret, &error, report);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn onboard_steps(
        &self,
        user: &str,
        slot: Slot,
        secret: &str,
        existing: Option<&ListedSecret>,
        pacer: &mut Pacer,
        starts: &mut Starts<S>,
        report: &mut RunReport,
    ) -> Result<Onboarded, AwsCallError> {
        let prefix = self.config.managed_prefix.as_str();
        match existing {
            Some(listed) if listed.deleted.is_some() => {
                return self.restore_or_wait(user, listed, pacer).await;
            }
            Some(listed) if !listed.fleet => {
                // A secret made before the fleet (the per-user template) or by hand, for a
                // user the registry names: adopt it, keeping its keys and versions.
                self.tag_user(user, pacer).await?;
                pacer.pay(Cost::SECRETS_WRITE).await;
                self.secrets.tag_fleet(secret, prefix).await?;
                if !listed.rotation_enabled {
                    self.end_sessions(user, pacer).await?;
                    self.lock_and_enable(secret, pacer, starts, report).await?;
                }
                info!(
                    decision = "secret_adopted",
                    user, secret, "existing secret adopted"
                );
                return Ok(Onboarded::Adopted);
            }
            Some(_) => {
                // Created by an earlier run that stopped before enabling rotation, or that
                // found IAM not yet showing the user's tag.
                if !self.tag_visible(user, secret).await? {
                    return Ok(Onboarded::Pending);
                }
                self.end_sessions(user, pacer).await?;
                self.lock_and_enable(secret, pacer, starts, report).await?;
            }
            None if slot == Slot::B => {
                // The user was enrolled with slot A (an earlier run); slot B is its second key.
                // After an upgrade from one secret per user, slot A's superseded key may still
                // be promised and hold IAM's second key: slot B waits for it rather than
                // fail its first rotation.
                let slots = self.slot_names(user);
                if let Some(keys) = UserKeys::read(&self.iam, user, &slots).await? {
                    let promised = keys
                        .managed
                        .iter()
                        .filter_map(|(_, mark)| mark.until)
                        .filter(|until| *until > SystemTime::now())
                        .max();
                    if let (Some(until), 2..) = (promised, keys.managed.len()) {
                        info!(decision = "second_slot_waits_for_promise", user, secret, until = %crate::time::rfc3339(until), "slot A's superseded key is still promised");
                        return Ok(Onboarded::Pending);
                    }
                }
                pacer.pay(Cost::SECRETS_WRITE).await;
                let value = serde_json::json!({ "UserName": user }).to_string();
                self.secrets
                    .create(secret, &value, prefix, self.config.kms_key_id.as_deref())
                    .await?;
                self.end_sessions(user, pacer).await?;
                self.lock_and_enable(secret, pacer, starts, report).await?;
            }
            None => {
                let Some(found) = self.iam.get_user(user).await? else {
                    warn!(
                        decision = "user_not_found",
                        user,
                        "registry names an IAM user that does not exist; create it or remove the entry"
                    );
                    return Ok(Onboarded::Pending);
                };
                let eligible = self.config.eligible_user_path.as_str();
                if !found.is_under(eligible) {
                    // The registry's writers choose users only inside the administrator's path.
                    warn!(
                        decision = "user_not_eligible",
                        user,
                        path = found.path().unwrap_or(""),
                        eligible_path = eligible,
                        "registry names a user outside EligibleUserPath; move it (aws iam update-user --new-path) or remove the entry"
                    );
                    report.users_not_eligible += 1;
                    return Ok(Onboarded::Pending);
                }
                self.tag_user(user, pacer).await?;
                let value = serde_json::json!({ "UserName": user }).to_string();
                // Slot B's secret first, keyless: slot A's first rotation then finds it and
                // mints a slot key (with its ExpiresAt). Its own rotation starts a run later.
                for name in [self.secret_name(user, Slot::B).as_str(), secret] {
                    pacer.pay(Cost::SECRETS_WRITE).await;
                    self.secrets
                        .create(name, &value, prefix, self.config.kms_key_id.as_deref())
                        .await?;
                }
                // The rotation function's rights and its own check depend on the tag: its
                // first rotation waits until IAM shows it (the next run looks again).
                if !self.tag_visible(user, secret).await? {
                    return Ok(Onboarded::Pending);
                }
                self.end_sessions(user, pacer).await?;
                self.lock_and_enable(secret, pacer, starts, report).await?;
            }
        }
        info!(
            decision = "user_onboarded",
            user, secret, "user onboarded; first rotation started"
        );
        Ok(Onboarded::Done)
    }

    /// Attaches the session-deny policy (when the stack has one) before the slot's first key:
    /// temporary credentials made from a managed user's keys would outlive them.
    async fn end_sessions(&self, user: &str, pacer: &mut Pacer) -> Result<(), AwsCallError> {
        let Some(policy) = self.config.session_deny_policy_arn.as_deref() else {
            return Ok(());
        };
        pacer.pay(Cost::IAM_WRITE).await;
        self.iam.attach_user_policy(user, policy).await
    }

    /// Whether IAM shows the user's enrolment tag yet (it is eventually consistent: just
    /// after TagUser a read may not, and the rotation function refuses a user without it).
    async fn tag_visible(&self, user: &str, secret: &str) -> Result<bool, AwsCallError> {
        let visible = self
            .iam
            .get_user(user)
            .await?
            .is_some_and(|found| found.is_enrolled());
        if !visible {
            info!(
                decision = "waiting_for_tag",
                user,
                secret,
                "IAM does not show the user's keyrot:managed tag yet; its first rotation starts at a later run"
            );
        }
        Ok(visible)
    }

    async fn tag_user(&self, user: &str, pacer: &mut Pacer) -> Result<(), AwsCallError> {
        pacer.pay(Cost::IAM_WRITE).await;
        self.iam
            .tag_user(user, MANAGED_USER_TAG, &self.config.managed_prefix)
            .await
    }

    /// The resource policy, then rotation: nothing can read the first key before the policy
    /// limits who may. The first rotation mints the slot's first key: slot A's is the user's
    /// first, slot B's (a run later) the second, which takes over from it.
    async fn lock_and_enable(
        &self,
        secret: &str,
        pacer: &mut Pacer,
        starts: &mut Starts<S>,
        report: &mut RunReport,
    ) -> Result<(), AwsCallError> {
        // The policy and its stamp.
        pacer.pay(Cost::SECRETS_WRITE).await;
        pacer.pay(Cost::SECRETS_WRITE).await;
        let (policy, stamp) = self.stack_policy();
        self.secrets.put_policy(secret, &policy, &stamp).await?;
        pacer.pay(Cost::ROTATION).await;
        starts
            .enable(
                secret.to_owned(),
                self.config.rotation_function_arn.clone(),
                report,
            )
            .await;
        Ok(())
    }

    /// A user back in the registry while its secret is in the recovery window: restore the
    /// secret if its keys are all still there (no key's promise has run out, so the cleanup
    /// that deletes them cannot have begun); otherwise finish the cleanup first, and onboard
    /// afresh in a later run.
    async fn restore_or_wait(
        &self,
        user: &str,
        listed: &ListedSecret,
        pacer: &mut Pacer,
    ) -> Result<Onboarded, AwsCallError> {
        let Some(deleted) = listed.deleted else {
            return Ok(Onboarded::Pending);
        };
        if !listed.fleet {
            warn!(
                decision = "secret_scheduled_for_deletion",
                user,
                secret = %listed.name,
                "a secret keyrot did not create is scheduled for deletion under this name; restore or purge it"
            );
            return Ok(Onboarded::Pending);
        }
        let keys = UserKeys::read(&self.iam, user, &self.slot_names(user)).await?;
        let still_promised = keys
            .as_ref()
            .and_then(|keys| keys.promised_until(|mark| deleted + self.kept_after_deletion(mark)))
            .is_some_and(|until| until > SystemTime::now());
        if still_promised {
            pacer.pay(Cost::SECRETS_WRITE).await;
            self.secrets.restore(&listed.name).await?;
            info!(decision = "secret_restored", user, secret = %listed.name, "offboarding undone");
            return Ok(Onboarded::Restored);
        }
        // Offboarding's cleanup runs for this secret in the same run (it is not desired-only);
        // finish it here, then the next run creates a fresh secret.
        self.cleanup(user, listed, pacer).await?;
        Ok(Onboarded::Pending)
    }
}
