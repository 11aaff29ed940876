//! Removing keyrot from an account (stack deletion): every secret the fleet made is deleted at
//! once, then every key keyrot made on its user and every tag keyrot wrote there, then the
//! registry. Keys go at once, like the emergency revoke: to keep every promise, empty the
//! registry first and wait one interval (docs/deploy.md, "Removing keyrot").

use super::pacer::{Cost, Pacer};
use super::ports::{FleetSecrets, Registry, UserPolicies};
use super::user_keys::UserKeys;
use super::Fleet;
use crate::iam_key::IamKeys;
use crate::AwsCallError;
use serde::Serialize;
use std::collections::BTreeSet;
use tokio::time::Instant;
use tracing::{info, warn};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TeardownReport {
    pub secrets_deleted: Vec<String>,
    pub keys_deleted: u64,
    pub registry_entries_deleted: Vec<String>,
    /// Secrets under the prefix that keyrot did not make: left alone, listed for the operator.
    pub secrets_left: Vec<String>,
    /// Calls that failed; the teardown is incomplete and a new attempt continues it.
    pub errors: Vec<String>,
    /// False when time ran out or a call failed.
    pub complete: bool,
}

impl<R: Registry, S: FleetSecrets + Clone + 'static, I: IamKeys + UserPolicies> Fleet<R, S, I> {
    pub async fn teardown(&self, deadline: Instant) -> TeardownReport {
        let mut report = TeardownReport::default();
        let mut pacer = Pacer::new(self.config.budgets);
        let listed = match self.secrets.list(&self.config.managed_prefix).await {
            Ok(listed) => listed,
            Err(error) => {
                report.errors.push(error.to_string());
                return report;
            }
        };
        let registry = match self.registry.users().await {
            Ok(users) => users,
            Err(error) => {
                report.errors.push(error.to_string());
                return report;
            }
        };
        let mut users: BTreeSet<String> = registry.users.iter().cloned().collect();
        users.extend(self.config.seed_users.iter().cloned());
        for secret in &listed {
            let Some(user) = self.user_of(&secret.name) else {
                continue;
            };
            if !secret.fleet {
                warn!(decision = "secret_left", secret = %secret.name, "not made by keyrot's fleet: left in place");
                report.secrets_left.push(secret.name.clone());
                users.remove(user);
                continue;
            }
            users.insert(user.to_owned());
        }
        let mut ran_out = false;
        for user in &users {
            if Instant::now() >= deadline {
                ran_out = true;
                break;
            }
            let secrets = self.slot_names(user);
            let listed_secrets: Vec<String> = secrets
                .iter()
                .filter(|name| listed.iter().any(|s| s.name == **name && s.fleet))
                .cloned()
                .collect();
            match self
                .remove_user(user, &secrets, &listed_secrets, &mut pacer)
                .await
            {
                Ok(keys) => {
                    report.keys_deleted += keys;
                    report.secrets_deleted.extend(listed_secrets);
                }
                Err(error) => {
                    warn!(decision = "teardown_call_failed", user, error = %error, "teardown step failed");
                    report.errors.push(format!("{user}: {error}"));
                }
            }
        }
        for user in &registry.users {
            if ran_out || Instant::now() >= deadline {
                ran_out = true;
                break;
            }
            match self.registry.remove(user).await {
                Ok(()) => report.registry_entries_deleted.push(user.clone()),
                Err(error) => report
                    .errors
                    .push(format!("registry entry {user}: {error}")),
            }
        }
        report.complete = !ran_out && report.errors.is_empty();
        info!(
            decision = "teardown",
            report = %serde_json::to_string(&report).unwrap_or_default(),
            "keyrot removed from the account"
        );
        report
    }

    /// The slot secrets first (nothing is served any more), then the user's keys and tags.
    async fn remove_user(
        &self,
        user: &str,
        secrets: &[String],
        listed_secrets: &[String],
        pacer: &mut Pacer,
    ) -> Result<u64, AwsCallError> {
        for secret in listed_secrets {
            pacer.pay(Cost::SECRETS_WRITE).await;
            self.secrets.purge(secret).await?;
        }
        // Seed and registry users the fleet never enrolled: keyrot made nothing there, and its
        // rights to read their keys depend on the enrolment tag (GetUser needs no tag).
        if !self.is_enrolled(user).await? {
            info!(
                decision = "user_skipped",
                user, "never enrolled: nothing to remove"
            );
            return Ok(0);
        }
        let Some(keys) = UserKeys::read(&self.iam, user, secrets).await? else {
            return Ok(0);
        };
        let deleted = self.release_user(&keys, user, pacer).await?;
        info!(
            decision = "user_removed",
            user,
            deleted_keys = deleted,
            "keys and tags removed"
        );
        Ok(deleted as u64)
    }
}
