//! The fleet: onboarding and offboarding through a registry, and the dispatcher that rotates
//! each user's two key slots alternately, one of them every interval, at the user's own
//! offset (docs/fleet.md). One run every
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
mod stack;
mod starts;
mod teardown;
mod user_keys;

#[cfg(test)]
mod tests;

pub use config::FleetConfig;
pub use custom_resource::{is_cloudformation_response_url, CustomResourceResponder};
pub use handler::{handle_fleet_event, is_fleet_event, FleetError, StackPorts};
pub use pacer::{Budgets, Cost, Pacer, IAM_WRITES_PER_ROTATION, SECRETS_WRITES_PER_ROTATION};
pub use policy::readers_only;
pub use ports::{
    FleetSecrets, ListedSecret, Registry, RegistryUsers, RotationStart, UserPolicies,
    FLEET_SECRET_TAG, MANAGED_USER_TAG,
};
pub use report::RunReport;
pub use sdk::{entry_user, SsmRegistry};
pub use slots::due_at;
pub use stack::{CloudFormationStacks, StackStatus, DELETE_IN_PROGRESS};
pub use teardown::TeardownReport;

use crate::iam_key::IamKeys;
use crate::key_slots::{self, Slot};
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
    /// A managed secret whose resource policy is not (stamped as) the one the stack asks for:
    /// an adopted secret's own, or one naming readers the stack no longer names.
    Repolicy(&'a ListedSecret),
    /// Confirmed with DescribeSecret before acting: the listing may be stale.
    Onboard(&'a str, Slot),
    Rotate(&'a ListedSecret, SystemTime),
}

impl<R: Registry, S: FleetSecrets + Clone + 'static, I: IamKeys + UserPolicies> Fleet<R, S, I> {
    fn secret_name(&self, user: &str, slot: Slot) -> String {
        key_slots::secret_name(&self.config.managed_prefix, user, slot)
    }

    /// The resource policy the stack asks for on every managed secret, and the stamp that
    /// records it there together with the session-deny policy put on its user.
    fn stack_policy(&self) -> (String, String) {
        let policy = policy::readers_only(&self.config.secret_readers);
        let session = self.config.session_deny_policy_arn.as_deref().unwrap_or("");
        let stamp = policy::stamp(&format!("{policy}\n{session}"));
        (policy, stamp)
    }

    /// Releases `user`: the session-deny policy first (the right to detach it depends on the
    /// enrolment tag, which the release removes), then keyrot's keys and tags.
    async fn release_user(
        &self,
        keys: &user_keys::UserKeys,
        user: &str,
        pacer: &mut pacer::Pacer,
    ) -> Result<usize, AwsCallError> {
        let detach = self.config.session_deny_policy_arn.as_deref();
        pacer
            .pay(pacer::Cost {
                iam_writes: keys.release_writes() + u64::from(detach.is_some()),
                ..pacer::Cost::default()
            })
            .await;
        if let Some(policy) = detach {
            self.iam.detach_user_policy(user, policy).await?;
        }
        keys.release(&self.iam, user).await
    }

    /// Whether `user` still carries keyrot's enrolment tag. The fleet's rights to read a
    /// user's keys and tags depend on it; GetUser (which returns the tags) does not. A user
    /// whose keys were released lost the tag with them, so it has nothing of keyrot's left.
    async fn is_enrolled(&self, user: &str) -> Result<bool, AwsCallError> {
        Ok(self
            .iam
            .get_user(user)
            .await?
            .is_some_and(|found| found.is_enrolled()))
    }

    fn user_of<'a>(&self, secret: &'a str) -> Option<&'a str> {
        key_slots::parse_secret_name(&self.config.managed_prefix, secret).map(|(user, _)| user)
    }

    /// Both slot secrets' names of `user`.
    fn slot_names(&self, user: &str) -> Vec<String> {
        Slot::BOTH
            .iter()
            .map(|slot| self.secret_name(user, *slot))
            .collect()
    }

    /// How long after a slot stops being served its key may still be promised: a key is
    /// retired at the first tick of its slot an interval after it was minted or carried on,
    /// at most three intervals after the last rotation, plus the grace. The interval is the
    /// one the key was minted under, as its mark records, when a deploy has since shortened
    /// the configured one. (The fleet may not read the keys' values, where the exact tick is
    /// recorded.)
    fn kept_after_deletion(&self, mark: &crate::iam_key::ManagedMark) -> Duration {
        let interval = mark.interval.map_or(self.config.interval, |minted| {
            minted.max(self.config.interval)
        });
        interval.saturating_mul(3) + self.config.offboard_grace
    }

    /// The users the fleet should manage: the registry's and the seed list. A registry that
    /// cannot be read stops the run before anything changes: an unreadable registry must
    /// never look like an empty one.
    ///
    /// Also the registry's listing, whose unreadable entries hold their users as they are.
    async fn desired(&self) -> Result<(BTreeSet<String>, RegistryUsers), FleetError> {
        let listing = self.registry.users().await.map_err(FleetError::Registry)?;
        let mut users: BTreeSet<String> = listing.users.iter().cloned().collect();
        users.extend(self.config.seed_users.iter().cloned());
        Ok((users, listing))
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
        // Both listings at once: they page one after another inside the run's deadline.
        let (desired, listed) = tokio::join!(
            self.desired(),
            self.secrets.list(&self.config.managed_prefix)
        );
        let (desired, registry) = desired?;
        let listed = listed.map_err(FleetError::Listing)?;
        let by_name: BTreeMap<&str, &ListedSecret> = listed
            .iter()
            .map(|secret| (secret.name.as_str(), secret))
            .collect();

        let mut report = RunReport {
            slots_through: Some(now + run_time),
            ..RunReport::default()
        };
        report.registry_entries_unreadable = registry.unreadable.len() as u64;
        // Every user needs one rotation an interval (its slots take turns): more users than
        // the budgets start in an interval drift, so say so every run.
        let capacity = self.config.budgets.users_per_interval(self.config.interval);
        report.users_beyond_cadence = (desired.len() as u64).saturating_sub(capacity);
        if report.users_beyond_cadence > 0 {
            tracing::warn!(
                decision = "cadence_not_kept",
                users = desired.len(),
                users_per_interval = capacity,
                "the budgets rotate fewer users per interval than the fleet has: keys rotate less often than every interval"
            );
        }
        let (policy, policy_stamp) = self.stack_policy();
        let mut work = Vec::new();
        for secret in &listed {
            let user = self.user_of(&secret.name);
            let desired_user = user.is_some_and(|u| desired.contains(u));
            if secret.fleet && !desired_user {
                if user.is_some_and(|u| registry.holds(u)) {
                    // An entry that exists but does not parse must never release its user.
                    tracing::warn!(
                        decision = "offboarding_held",
                        secret = %secret.name,
                        "kept: the user's registry entry is unreadable"
                    );
                    continue;
                }
                work.push(Work::Offboard(secret));
            }
        }
        let horizon = now + run_time;
        let mut rotations = Vec::new();
        for user in &desired {
            let mut user_managed = true;
            // Slot A rotating: its first rotation (started once IAM showed the user's tag)
            // mints the user's first key, before slot B's mints the second.
            let slot_a_enabled = by_name
                .get(self.secret_name(user, Slot::A).as_str())
                .is_some_and(|a| a.fleet && a.deleted.is_none() && a.rotation_enabled);
            // At most one of the user's slots per run, the earlier tick: the other one's
            // rotation would only carry its key forward while this one is under way.
            let mut user_due: Option<(&ListedSecret, SystemTime)> = None;
            for slot in Slot::BOTH {
                let name = self.secret_name(user, slot);
                match by_name.get(name.as_str()) {
                    Some(secret)
                        if secret.fleet && secret.rotation_enabled && secret.deleted.is_none() =>
                    {
                        self.check_stale(secret, now, &mut report);
                        if secret.policy_stamp.as_deref() != Some(policy_stamp.as_str()) {
                            work.push(Work::Repolicy(secret));
                        }
                        let due = slots::due_at(
                            &self.config.managed_prefix,
                            &secret.name,
                            self.config.interval,
                            secret.last_rotated,
                            horizon,
                        );
                        if let Some(due) = due {
                            if user_due.is_none_or(|(_, earlier)| due < earlier) {
                                user_due = Some((secret, due));
                            }
                        }
                    }
                    // Slot B follows slot A a run later; a slot B in its recovery window is
                    // restored alongside slot A.
                    existing if slot == Slot::B && !slot_a_enabled => {
                        user_managed = false;
                        if existing.is_some_and(|b| b.deleted.is_some()) {
                            work.push(Work::Onboard(user, slot));
                        } else {
                            report.onboarding_pending += 1;
                        }
                    }
                    _ => {
                        user_managed = false;
                        work.push(Work::Onboard(user, slot));
                    }
                }
            }
            if let Some((secret, due)) = user_due {
                rotations.push(Work::Rotate(secret, due));
            }
            if user_managed {
                report.managed += 1;
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
        // Offboarding and policy repairs first (few; the first frees budget, the second closes
        // access the stack no longer grants), then late slots and onboarding taking turns, so
        // that neither starves the other when the budgets are the bound, then the slots still
        // to come in this run.
        let (offboarding, onboarding): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|item| matches!(item, Work::Offboard(_) | Work::Repolicy(_)));
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
                    Work::Repolicy(_) | Work::Rotate(..) => {}
                }
                continue;
            }
            match item {
                Work::Repolicy(listed) => {
                    // The listing may be minutes behind a rewrite already made.
                    match self.confirm(&listed.name, &mut report).await {
                        Some(Some(secret))
                            if secret.policy_stamp.as_deref() != Some(policy_stamp.as_str()) => {}
                        _ => continue,
                    }
                    // The session-deny policy first (an upgrade from before it, or a new one):
                    // the stamp below then claims both.
                    if let (Some(arn), Some(user)) = (
                        self.config.session_deny_policy_arn.as_deref(),
                        self.user_of(&listed.name),
                    ) {
                        pacer.pay(Cost::IAM_WRITE).await;
                        if let Err(error) = self.iam.attach_user_policy(user, arn).await {
                            self.failed(&listed.name, &error, &mut report);
                            continue;
                        }
                    }
                    pacer.pay(Cost::SECRETS_WRITE).await;
                    pacer.pay(Cost::SECRETS_WRITE).await;
                    match self
                        .secrets
                        .put_policy(&listed.name, &policy, &policy_stamp)
                        .await
                    {
                        Ok(()) => {
                            report.policies_rewritten += 1;
                            info!(decision = "policy_rewritten", secret = %listed.name, "resource policy put back to the stack's");
                        }
                        Err(error) => self.failed(&listed.name, &error, &mut report),
                    }
                }
                Work::Offboard(listed) => match self.confirm(&listed.name, &mut report).await {
                    Some(Some(secret)) if secret.fleet => {
                        self.offboard(&secret, &mut pacer, &mut report).await
                    }
                    Some(_) => {
                        info!(decision = "listing_stale", secret = %listed.name, "already gone")
                    }
                    None => report.offboarding_pending += 1,
                },
                Work::Onboard(user, slot) => {
                    let name = self.secret_name(user, slot);
                    match self.confirm(&name, &mut report).await {
                        Some(Some(secret))
                            if secret.fleet
                                && secret.rotation_enabled
                                && secret.deleted.is_none() =>
                        {
                            info!(decision = "listing_stale", secret = %name, "already onboarded");
                        }
                        Some(existing) => {
                            self.onboard(
                                user,
                                slot,
                                existing.as_ref(),
                                &mut pacer,
                                &mut starts,
                                &mut report,
                            )
                            .await
                        }
                        None => report.onboarding_pending += 1,
                    }
                }
                Work::Rotate(secret, due) => {
                    if !self.wait_for(due, deadline).await {
                        left += 1;
                        report.slots_through = None;
                        continue;
                    }
                    if self.may_rotate(&secret.name, due, &mut report).await {
                        pacer.pay(Cost::ROTATION).await;
                        starts
                            .rotate(
                                secret.name.clone(),
                                self.config.rotation_function_arn.clone(),
                                &mut report,
                            )
                            .await;
                    }
                }
            }
        }
        starts.finish(&mut report).await;
        if left > 0 {
            info!(decision = "run_time_up", left, "left for the next run");
        }
        Ok(report)
    }

    /// The secret as DescribeSecret has it now (ListSecrets may miss the last five minutes);
    /// the outer `None` when it could not be read (counted as a failure, retried next run).
    async fn confirm(&self, name: &str, report: &mut RunReport) -> Option<Option<ListedSecret>> {
        match self
            .secrets
            .describe(name, &self.config.managed_prefix)
            .await
        {
            Ok(found) => Some(found),
            Err(error) => {
                self.failed(name, &error, report);
                None
            }
        }
    }

    /// Whether the tick at `due` still needs a rotation, confirmed with DescribeSecret: not if
    /// one has run since (a stale listing must not add a rotation and a version), and not
    /// while this secret or the user's other slot is rotating (one rotation per user at a
    /// time; the one in progress covers the tick, or the next run starts it).
    async fn may_rotate(&self, name: &str, due: SystemTime, report: &mut RunReport) -> bool {
        let Some(Some(secret)) = self.confirm(name, report).await else {
            return false;
        };
        if secret.last_rotated.is_some_and(|last| last >= due) || secret.deleted.is_some() {
            info!(decision = "listing_stale", secret = %name, "rotated since it was listed");
            return false;
        }
        let sibling = key_slots::sibling_name(&self.config.managed_prefix, name);
        let sibling_rotating = match sibling {
            Some(sibling) => match self.confirm(&sibling, report).await {
                Some(found) => found.is_some_and(|s| s.rotating),
                None => return false,
            },
            None => false,
        };
        if secret.rotating || sibling_rotating {
            report.rotations_refused += 1;
            info!(
                decision = "rotation_refused_in_progress",
                secret = %name,
                other_slot = sibling_rotating,
                "a rotation of this user is in progress; it covers this tick, or the next run starts it"
            );
            return false;
        }
        true
    }

    /// Sleeps until `due` (wall clock); false if that is past the run's deadline. A tick
    /// already due goes at once, even if the run's earlier work took it past the deadline:
    /// it lies inside the run's horizon, and no later run would take it.
    async fn wait_for(&self, due: SystemTime, deadline: Instant) -> bool {
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        if wait.is_zero() {
            return true;
        }
        let at = Instant::now() + wait;
        if at >= deadline {
            return false;
        }
        tokio::time::sleep_until(at).await;
        true
    }

    /// A slot rotates every two intervals: one not rotated within three has missed a tick.
    fn check_stale(&self, secret: &ListedSecret, now: SystemTime, report: &mut RunReport) {
        let limit = self.config.interval.saturating_mul(3);
        let stale = match secret.last_rotated {
            Some(last) => now.duration_since(last).is_ok_and(|age| age > limit),
            None => true,
        };
        if stale {
            warn!(
                decision = "secret_stale",
                secret = %secret.name,
                last_rotated = ?secret.last_rotated.map(crate::time::rfc3339),
                "not rotated within three intervals (a slot rotates every two)"
            );
            report.stale.push(secret.name.clone());
        }
    }

    fn failed(&self, secret: &str, error: &AwsCallError, report: &mut RunReport) {
        report.failed(secret, error);
    }
}
