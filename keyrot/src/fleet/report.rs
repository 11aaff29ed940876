//! What one reconcile run did: logged once, and published as the fleet's summary metrics, a
//! fixed set of series whatever the number of users.

use crate::metrics::{self, Unit};
use serde::Serialize;
use tracing::info;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunReport {
    /// Users whose secret is in place and rotating.
    pub managed: u64,
    pub onboarded: u64,
    pub adopted: u64,
    pub restored: u64,
    /// Registry users not yet in place (unknown to IAM, or left for the next run).
    pub onboarding_pending: u64,
    pub offboarding_started: u64,
    pub offboarded: u64,
    /// Offboarded users whose keys are still promised to clients (or left for the next run).
    pub offboarding_pending: u64,
    pub rotations_started: u64,
    pub rotations_refused: u64,
    /// Managed secrets not rotated within two intervals (each one logged by name).
    pub stale: Vec<String>,
    /// Calls that failed (each one logged); the run went on with the other users.
    pub errors: u64,
    /// Registry entries that exist but do not parse (each one logged); their users are kept
    /// as they are until the entry is fixed or deleted.
    pub registry_entries_unreadable: u64,
    /// Managed secrets whose resource policy was put back to the stack's (each one logged).
    pub policies_rewritten: u64,
    /// Registry users outside `EligibleUserPath`, refused (each one logged).
    pub users_not_eligible: u64,
    /// Users beyond what the budgets rotate in one interval (`Budgets::users_per_interval`):
    /// above zero, keys rotate less often than every interval.
    pub users_beyond_cadence: u64,
    /// Every slot up to this time (whole seconds) was due in this run: the next run takes the
    /// slots after it.
    #[serde(skip)]
    pub slots_through: Option<std::time::SystemTime>,
}

impl RunReport {
    /// Counts and logs a failed call; the run goes on with the other users.
    pub fn failed(&mut self, secret: &str, error: &crate::AwsCallError) {
        self.errors += 1;
        tracing::warn!(
            decision = "fleet_call_failed",
            secret = %secret,
            operation = error.operation,
            error_code = error.code.as_deref().unwrap_or("none"),
            error = %error,
            "call failed; the next run retries"
        );
    }

    pub fn publish(&self) {
        info!(
            decision = "reconcile_summary",
            report = %serde_json::to_string(self).unwrap_or_default(),
            "fleet reconciled"
        );
        let count = |value: u64| value as f64;
        metrics::emit(
            &[],
            &[&[]],
            &[
                ("FleetManagedUsers", count(self.managed), Unit::Count),
                (
                    "FleetStaleSecrets",
                    count(self.stale.len() as u64),
                    Unit::Count,
                ),
                (
                    "FleetOnboardingPending",
                    count(self.onboarding_pending),
                    Unit::Count,
                ),
                (
                    "FleetOffboardingPending",
                    count(self.offboarding_pending),
                    Unit::Count,
                ),
                (
                    "FleetRotationsStarted",
                    count(self.rotations_started),
                    Unit::Count,
                ),
                (
                    "FleetRotationsRefused",
                    count(self.rotations_refused),
                    Unit::Count,
                ),
                ("FleetErrors", count(self.errors), Unit::Count),
                (
                    "FleetUsersNotEligible",
                    count(self.users_not_eligible),
                    Unit::Count,
                ),
                (
                    "FleetUsersBeyondCadence",
                    count(self.users_beyond_cadence),
                    Unit::Count,
                ),
                (
                    "FleetRegistryEntriesUnreadable",
                    count(self.registry_entries_unreadable),
                    Unit::Count,
                ),
            ],
        );
    }
}
