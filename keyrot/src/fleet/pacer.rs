//! Per-account call budgets: the fleet starts rotations (and makes its own writes) no faster
//! than the tightest budget allows. Secrets Manager's write and RotateSecret quotas are shared
//! with everything else in the account, and IAM's rates are unpublished and cannot be raised,
//! so keyrot keeps to a configured share of each.

use std::time::Duration;
use tokio::time::Instant;

/// Budgets, in calls per second, per account and region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    pub iam_writes_per_second: u64,
    pub secrets_writes_per_second: u64,
    pub rotate_secret_per_second: u64,
}

/// The IAM writes of a slot's tick that makes a new key, counted at the fault proxy over whole
/// rotations (BENCHMARKS.md, "Fleet"): the retired key's DeleteAccessKey, the slot's mark
/// (written before the key, it overwrites the last one and tells the key that appears next)
/// and CreateAccessKey. A carry-forward writes none.
pub const IAM_WRITES_PER_ROTATION: u64 = 3;
/// PutSecretValue (createSecret) and UpdateSecretVersionStage (finishSecret).
pub const SECRETS_WRITES_PER_ROTATION: u64 = 2;

/// What a call costs against the budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    pub iam_writes: u64,
    pub secrets_writes: u64,
    pub rotate_secret: u64,
}

impl Cost {
    pub const ROTATION: Cost = Cost {
        iam_writes: IAM_WRITES_PER_ROTATION,
        secrets_writes: SECRETS_WRITES_PER_ROTATION,
        rotate_secret: 1,
    };
    pub const IAM_WRITE: Cost = Cost {
        iam_writes: 1,
        secrets_writes: 0,
        rotate_secret: 0,
    };
    pub const SECRETS_WRITE: Cost = Cost {
        iam_writes: 0,
        secrets_writes: 1,
        rotate_secret: 0,
    };
}

impl Budgets {
    /// Rotations per second the budgets allow, the tightest of the three.
    pub fn rotations_per_second(&self) -> f64 {
        let per = |budget: u64, cost: u64| budget as f64 / cost as f64;
        per(self.iam_writes_per_second, IAM_WRITES_PER_ROTATION)
            .min(per(
                self.secrets_writes_per_second,
                SECRETS_WRITES_PER_ROTATION,
            ))
            .min(self.rotate_secret_per_second as f64)
    }

    /// The most users whose keys can each rotate once per `interval`.
    pub fn users_per_interval(&self, interval: Duration) -> u64 {
        (self.rotations_per_second() * interval.as_secs_f64()).floor() as u64
    }
}

/// Spaces calls evenly: each budget has the instant it can next pay for a call, and paying
/// moves that instant on by the cost over the rate. No bursts: over any second, no budget
/// pays for more than its rate (plus the one call in progress).
#[derive(Debug)]
pub struct Pacer {
    budgets: Budgets,
    iam_next: Instant,
    secrets_next: Instant,
    rotate_next: Instant,
}

impl Pacer {
    pub fn new(budgets: Budgets) -> Self {
        let now = Instant::now();
        Self {
            budgets,
            iam_next: now,
            secrets_next: now,
            rotate_next: now,
        }
    }

    /// When a call costing `cost` could start.
    pub fn ready_at(&self, cost: Cost) -> Instant {
        let now = Instant::now();
        [
            (self.iam_next, cost.iam_writes),
            (self.secrets_next, cost.secrets_writes),
            (self.rotate_next, cost.rotate_secret),
        ]
        .into_iter()
        .filter(|(_, calls)| *calls > 0)
        .map(|(next, _)| next)
        .fold(now, Instant::max)
    }

    /// Waits until every budget can pay `cost`, then spends it.
    pub async fn pay(&mut self, cost: Cost) {
        let start = self.ready_at(cost);
        tokio::time::sleep_until(start).await;
        let budgets = self.budgets;
        for (next, per_second, calls) in [
            (
                &mut self.iam_next,
                budgets.iam_writes_per_second,
                cost.iam_writes,
            ),
            (
                &mut self.secrets_next,
                budgets.secrets_writes_per_second,
                cost.secrets_writes,
            ),
            (
                &mut self.rotate_next,
                budgets.rotate_secret_per_second,
                cost.rotate_secret,
            ),
        ] {
            if calls > 0 {
                *next = start + spacing(per_second, calls);
            }
        }
    }
}

/// How long a budget takes to pay for `calls`.
fn spacing(per_second: u64, calls: u64) -> Duration {
    Duration::from_secs_f64(calls as f64 / per_second.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Budgets = Budgets {
        iam_writes_per_second: 10,
        secrets_writes_per_second: 20,
        rotate_secret_per_second: 50,
    };

    #[test]
    fn the_tightest_budget_sets_the_rotation_rate() {
        // IAM: 10 / 3 writes per rotation.
        assert!((DEFAULTS.rotations_per_second() - 10.0 / 3.0).abs() < 1e-9);
        assert_eq!(DEFAULTS.users_per_interval(Duration::from_secs(600)), 2000);
        let generous_iam = Budgets {
            iam_writes_per_second: 1000,
            ..DEFAULTS
        };
        assert_eq!(generous_iam.rotations_per_second(), 10.0);
    }

    #[tokio::test(start_paused = true)]
    async fn rotations_are_spaced_by_the_tightest_budget() {
        let mut pacer = Pacer::new(DEFAULTS);
        let begin = Instant::now();
        for _ in 0..11 {
            pacer.pay(Cost::ROTATION).await;
        }
        // The first starts at once, then one every 0.3 s (3 IAM writes at 10/s).
        let elapsed = Instant::now() - begin;
        assert_eq!(elapsed, Duration::from_millis(3000));
    }

    #[tokio::test(start_paused = true)]
    async fn budgets_are_independent() {
        let mut pacer = Pacer::new(DEFAULTS);
        let begin = Instant::now();
        pacer.pay(Cost::ROTATION).await;
        // A Secrets Manager write does not wait for IAM's budget to refill.
        pacer.pay(Cost::SECRETS_WRITE).await;
        assert_eq!(Instant::now() - begin, Duration::from_millis(100));
        pacer.pay(Cost::IAM_WRITE).await;
        assert_eq!(Instant::now() - begin, Duration::from_millis(300));
    }
}
