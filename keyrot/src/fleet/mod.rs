//! The fleet: onboarding and offboarding through a registry, and the dispatcher that rotates
//! each managed secret once per interval at its own offset (docs/fleet.md). One run every
//! minute; every step is derived from what the run observes, so a crash between any two calls
//! is finished by the next run.

mod config;
mod custom_resource;
mod handler;
mod offboard;
mod onboard;
mod pacer;
mod policy;
mod ports;
mod report;
mod sdk;
mod slots;
mod starts;
mod teardown;
mod user_keys;

#[cfg(test)]
mod tests;

pub use config::FleetConfig;
pub use custom_resource::CustomResourceResponder;
pub use handler::{handle_fleet_event, is_fleet_event, FleetError};
pub use pacer::{Budgets, Cost, Pacer, IAM_WRITES_PER_ROTATION, SECRETS_WRITES_PER_ROTATION};
pub use ports::{
    FleetSecrets, ListedSecret, Registry, RotationStart, FLEET_SECRET_TAG, MANAGED_USER_TAG,
};
pub use report::RunReport;
pub use sdk::{entry_user, SsmRegistry};
pub use slots::{due_at, offset};
pub use teardown::TeardownReport;

use crate::iam_key::IamKeys;
use crate::AwsCallError;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{info, warn};

pub struct Fleet<R, S, I> {
    pub registry: R,
    pub secrets: S,
    pub iam: I,
    pub config: FleetConfig,
}

/// One unit of work of a run, in the order the run takes them.
enum Work<'a> {
    Offboard(&'a ListedSecret),
    Onboard(&'a str, Option<&'a ListedSecret>),
    Rotate(&'a ListedSecret, SystemTime),
}

impl<R: Registry, S: FleetSecrets + Clone + 'static, I: IamKeys> Fleet<R, S, I> {
    fn secret_name(&self, user: &str) -> String {
        format!("{}{user}", self.config.managed_prefix)
    }

    fn user_of<'a>(&self, secret: &'a str) -> Option<&'a str> {
        secret.strip_prefix(self.config.managed_prefix.as_str())
    }

    /// The users the fleet should manage: the registry's and the seed list. A registry that
    /// cannot be read stops the run before anything changes: an unreadable registry must
    /// never look like an empty one.
    async fn desired(&self) -> Result<BTreeSet<String>, FleetError> {
        let mut users: BTreeSet<String> = self
            .registry
            .users()
            .await
            .map_err(FleetError::Registry)?
            .into_iter()
            .collect();
        users.extend(self.config.seed_users.iter().cloned());
        Ok(users)
    }

    /// One reconcile run: offboard, onboard, then rotate what is due, paced by the budgets,
    /// until the run's time is up (the rest is the next run's).
    pub async fn reconcile(&self) -> Result<RunReport, FleetError> {
        self.reconcile_for(self.config.run_time).await
    }

    /// A run of `run_time` instead of the configured one (the last run before a deadline).
    pub async fn reconcile_for(&self, run_time: Duration) -> Result<RunReport, FleetError> {
        let started = Instant::now();
        let deadline = started + run_time;
        let now = SystemTime::now();
        let desired = self.desired().await?;
        let listed = self
            .secrets
            .list(&self.config.managed_prefix)
            .await
            .map_err(FleetError::Listing)?;
        let by_user: BTreeMap<&str, &ListedSecret> = listed
            .iter()
            .filter_map(|secret| self.user_of(&secret.name).map(|user| (user, secret)))
            .collect();

        let mut report = RunReport {
            slots_through: Some(now + run_time),
            ..RunReport::default()
        };
        let mut work = Vec::new();
        for secret in &listed {
            let desired_user = self
                .user_of(&secret.name)
                .is_some_and(|u| desired.contains(u));
            if secret.fleet && !desired_user {
                work.push(Work::Offboard(secret));
            }
        }
        let horizon = now + run_time;
        let mut rotations = Vec::new();
        for user in &desired {
            match by_user.get(user.as_str()) {
                Some(secret)
                    if secret.fleet && secret.rotation_enabled && secret.deleted.is_none() =>
                {
                    report.managed += 1;
                    self.check_stale(secret, now, &mut report);
                    let due = slots::due_at(
                        &secret.name,
                        self.config.interval,
                        secret.last_rotated,
                        horizon,
                    );
                    match due {
                        // RotateSecret would be refused: the rotation in progress covers the
                        // slot, and counts as refused (a stuck one also makes the secret stale).
                        Some(_) if secret.rotating => {
                            report.rotations_refused += 1;
                            info!(
                                decision = "rotation_refused_in_progress",
                                secret = %secret.name,
                                "a rotation is in progress; it covers this slot"
                            );
                        }
                        Some(due) => rotations.push(Work::Rotate(secret, due)),
                        None => {}
                    }
                }
                existing => work.push(Work::Onboard(user, existing.copied())),
            }
        }
        // Catch-up rotations (slots already past) before onboarding; future slots in order.
        rotations.sort_by_key(|item| match item {
            Work::Rotate(_, due) => *due,
            _ => now,
        });
        let (overdue, upcoming): (Vec<_>, Vec<_>) = rotations
            .into_iter()
            .partition(|item| matches!(item, Work::Rotate(_, due) if *due <= now));
        // Offboarding first (few, and it frees budget), then late slots and onboarding taking
        // turns, so that neither starves the other when the budgets are the bound, then the
        // slots still to come in this run.
        let (offboarding, onboarding): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|item| matches!(item, Work::Offboard(_)));
        let mut queue: Vec<Work> = offboarding;
        let (mut late, mut new) = (overdue.into_iter(), onboarding.into_iter());
        loop {
            match (late.next(), new.next()) {
                (None, None) => break,
                (a, b) => queue.extend(a.into_iter().chain(b)),
            }
        }
        queue.extend(upcoming);

        let mut pacer = Pacer::new(self.config.budgets);
        let mut starts = starts::Starts::new(self.secrets.clone());
        let mut left = 0u64;
        for item in queue {
            // Onboarding and offboarding stop at the deadline; a slot inside the horizon is
            // still kept (`wait_for`).
            if Instant::now() >= deadline && !matches!(item, Work::Rotate(..)) {
                left += 1;
                match item {
                    Work::Onboard(..) => report.onboarding_pending += 1,
                    Work::Offboard(_) => report.offboarding_pending += 1,
                    Work::Rotate(..) => {}
                }
                continue;
            }
            match item {
                Work::Offboard(secret) => self.offboard(secret, &mut pacer, &mut report).await,
                Work::Onboard(user, existing) => {
                    self.onboard(user, existing, &mut pacer, &mut starts, &mut report)
                        .await
                }
                Work::Rotate(secret, due) => {
                    if !self.wait_for(due, deadline).await {
                        left += 1;
                        report.slots_through = None;
                        continue;
                    }
                    pacer.pay(Cost::ROTATION).await;
                    starts.rotate(secret.name.clone(), &mut report).await;
                }
            }
        }
        starts.finish(&mut report).await;
        if left > 0 {
            info!(decision = "run_time_up", left, "left for the next run");
        }
        Ok(report)
    }

    /// Sleeps until `due` (wall clock); false if that is past the run's deadline.
    async fn wait_for(&self, due: SystemTime, deadline: Instant) -> bool {
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        let at = Instant::now() + wait;
        if at >= deadline {
            return false;
        }
        tokio::time::sleep_until(at).await;
        true
    }

    fn check_stale(&self, secret: &ListedSecret, now: SystemTime, report: &mut RunReport) {
        let limit = self.config.interval.saturating_mul(2);
        let stale = match secret.last_rotated {
            Some(last) => now.duration_since(last).is_ok_and(|age| age > limit),
            None => true,
        };
        if stale {
            warn!(
                decision = "secret_stale",
                secret = %secret.name,
                last_rotated = ?secret.last_rotated.map(crate::time::rfc3339),
                "not rotated within two intervals"
            );
            report.stale.push(secret.name.clone());
        }
    }

    fn failed(&self, secret: &str, error: &AwsCallError, report: &mut RunReport) {
        report.failed(secret, error);
    }
}
