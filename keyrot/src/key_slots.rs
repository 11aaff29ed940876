//! The two key slots of a managed user, and the times that follow from them.
//!
//! IAM allows a user two access keys, and a rotation without downtime needs both: the new key
//! and the one clients still hold. Each key therefore has a secret of its own, a *slot*:
//! `<prefix><user>` (slot A) and `<prefix><user>/b` (slot B). IAM user names cannot contain
//! `/`, so the names never collide. Each slot rotates every two intervals, B one interval
//! after A, so the user gets a new key every interval while each secret gets half the
//! versions (docs/rotation.md).
//!
//! A key is retired at a tick of its own slot that is fixed when the key is minted: the first
//! one at least an interval later (its `ExpiresAt`). By then the other slot has minted a newer
//! key, one interval after this one, so the key was the newest for about one interval.

use aws_lc_rs::digest;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Appended to the user's secret name for the second slot.
pub const SLOT_B_SUFFIX: &str = "/b";

/// Largest allowance for a rotation to finish (the STS wait of a new key dominates it).
const MAX_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub const BOTH: [Slot; 2] = [Slot::A, Slot::B];

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
}

/// The name of `user`'s secret for `slot`.
pub fn secret_name(prefix: &str, user: &str, slot: Slot) -> String {
    match slot {
        Slot::A => format!("{prefix}{user}"),
        Slot::B => format!("{prefix}{user}{SLOT_B_SUFFIX}"),
    }
}

/// The user and slot a managed secret's name stands for; `None` for a name outside `prefix`
/// or one that names no user.
pub fn parse_secret_name<'a>(prefix: &str, name: &'a str) -> Option<(&'a str, Slot)> {
    let rest = name.strip_prefix(prefix)?;
    let (user, slot) = match rest.strip_suffix(SLOT_B_SUFFIX) {
        Some(user) => (user, Slot::B),
        None => (rest, Slot::A),
    };
    (!user.is_empty() && !user.contains('/')).then_some((user, slot))
}

/// The other slot's secret name.
pub fn sibling_name(prefix: &str, name: &str) -> Option<String> {
    let (user, slot) = parse_secret_name(prefix, name)?;
    Some(secret_name(prefix, user, slot.other()))
}

/// The interval a key is handed out under: the one recorded with it when it was minted, or
/// the configured one for values that recorded none (or zero, as tests' no-promise rotator
/// writes). The rotator, the API, offboarding and the CLI all ask this.
pub fn governing_interval(recorded_seconds: Option<u64>, configured: Duration) -> Duration {
    recorded_seconds
        .filter(|seconds| *seconds > 0)
        .map(Duration::from_secs)
        .unwrap_or(configured)
}

/// How long a rotation may take before the floor of a handed-out key's remaining lifetime is
/// missed: a tenth of the interval, 1 to 60 seconds.
pub fn slack(interval: Duration) -> Duration {
    (interval / 10).clamp(Duration::from_secs(1), MAX_SLACK)
}

/// The ticks of one user's slots for one interval: slot A at `offset + 2k·interval`, slot B
/// at `offset + (2k+1)·interval`. The offset is a hash of slot A's name, so that a fleet
/// onboarded at once still rotates spread over the interval, and an upgraded secret keeps its
/// phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    period: u64,
    offset: u64,
}

impl Schedule {
    /// The schedule of the secret named `name` (either slot) under `prefix`; `None` when the
    /// name is not a managed secret's.
    pub fn of(prefix: &str, name: &str, interval: Duration) -> Option<Self> {
        let (user, slot) = parse_secret_name(prefix, name)?;
        let interval = interval.as_secs().max(1);
        let base = offset(
            &secret_name(prefix, user, Slot::A),
            Duration::from_secs(interval),
        );
        let offset = match slot {
            Slot::A => base,
            Slot::B => base.checked_add(interval)?,
        };
        Some(Self {
            period: interval.checked_mul(2)?,
            offset,
        })
    }

    /// The latest tick at or before `at`.
    pub fn latest_at_or_before(&self, at: SystemTime) -> Option<SystemTime> {
        let now = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let since_offset = now.checked_sub(self.offset)?;
        let tick = self
            .offset
            .checked_add(since_offset - since_offset % self.period)?;
        UNIX_EPOCH.checked_add(Duration::from_secs(tick))
    }

    /// The first tick at or after `at`.
    pub fn first_at_or_after(&self, at: SystemTime) -> Option<SystemTime> {
        let since = at.duration_since(UNIX_EPOCH).ok()?;
        // Whole seconds, rounded up: a tick is never before `at`.
        let seconds = since
            .as_secs()
            .checked_add(u64::from(since.subsec_nanos() > 0))?;
        let tick = if seconds <= self.offset {
            self.offset
        } else {
            let steps = (seconds - self.offset).div_ceil(self.period);
            self.offset.checked_add(steps.checked_mul(self.period)?)?
        };
        UNIX_EPOCH.checked_add(Duration::from_secs(tick))
    }
}

/// When a key minted (or carried on) at `now` in the slot `name` is retired: the first tick of
/// its slot at least `interval` after `now`. On the tick that is the slot's next tick, two
/// intervals on; a rotation that ran late gets the tick after, so that a key is always the
/// newest for about one interval before it goes.
pub fn retirement(
    prefix: &str,
    name: &str,
    interval: Duration,
    now: SystemTime,
) -> Option<SystemTime> {
    let schedule = Schedule::of(prefix, name, interval)?;
    schedule.first_at_or_after(now.checked_add(interval)?)
}

/// The secret's offset within the interval, in whole seconds: a hash of its name (uniform,
/// stable across runs, deploys and instances, and independent of who else is managed).
pub fn offset(secret_name: &str, interval: Duration) -> u64 {
    let hash = digest::digest(&digest::SHA256, secret_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first) % interval.as_secs().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX: &str = "keyrot/iam/";
    const INTERVAL: Duration = Duration::from_secs(600);

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn secs(time: SystemTime) -> u64 {
        time.duration_since(UNIX_EPOCH)
            .expect("after epoch")
            .as_secs()
    }

    #[test]
    fn names_round_trip_and_never_collide() {
        assert_eq!(secret_name(PREFIX, "alice", Slot::A), "keyrot/iam/alice");
        assert_eq!(secret_name(PREFIX, "alice", Slot::B), "keyrot/iam/alice/b");
        assert_eq!(
            parse_secret_name(PREFIX, "keyrot/iam/alice/b"),
            Some(("alice", Slot::B))
        );
        assert_eq!(
            parse_secret_name(PREFIX, "keyrot/iam/alice"),
            Some(("alice", Slot::A))
        );
        // A user literally named "b" has slots keyrot/iam/b and keyrot/iam/b/b.
        assert_eq!(
            parse_secret_name(PREFIX, "keyrot/iam/b"),
            Some(("b", Slot::A))
        );
        assert_eq!(
            parse_secret_name(PREFIX, "keyrot/iam/b/b"),
            Some(("b", Slot::B))
        );
        for name in [
            "keyrot/iam/",
            "keyrot/iam//b",
            "keyrot/iam/a/c",
            "other/alice",
        ] {
            assert_eq!(parse_secret_name(PREFIX, name), None, "{name}");
        }
        assert_eq!(
            sibling_name(PREFIX, "keyrot/iam/alice").as_deref(),
            Some("keyrot/iam/alice/b")
        );
    }

    #[test]
    fn slots_tick_alternately_one_interval_apart() {
        let a = Schedule::of(PREFIX, "keyrot/iam/alice", INTERVAL).expect("schedule");
        let b = Schedule::of(PREFIX, "keyrot/iam/alice/b", INTERVAL).expect("schedule");
        let start = 1_800_000_000;
        let first_a = secs(a.first_at_or_after(at(start)).expect("tick"));
        let first_b = secs(b.first_at_or_after(at(first_a)).expect("tick"));
        assert_eq!(first_b - first_a, 600);
        let next_a = secs(a.first_at_or_after(at(first_a + 1)).expect("tick"));
        assert_eq!(next_a - first_a, 1200);
        assert_eq!(
            secs(a.latest_at_or_before(at(next_a - 1)).expect("tick")),
            first_a
        );
        assert_eq!(
            secs(a.latest_at_or_before(at(next_a)).expect("tick")),
            next_a
        );
        // Slot A keeps the phase the single secret had.
        assert_eq!(first_a % 600, offset("keyrot/iam/alice", INTERVAL));
    }

    #[test]
    fn a_key_minted_on_its_tick_is_retired_at_the_slots_next_tick() {
        let name = "keyrot/iam/alice";
        let schedule = Schedule::of(PREFIX, name, INTERVAL).expect("schedule");
        let tick = schedule.first_at_or_after(at(1_800_000_000)).expect("tick");
        // Minted a few seconds after the tick.
        let minted = tick + Duration::from_secs(7);
        let retired = retirement(PREFIX, name, INTERVAL, minted).expect("retirement");
        assert_eq!(secs(retired) - secs(tick), 1200);
        // Minted late, past the other slot's tick: retired one tick later.
        let late = tick + Duration::from_secs(700);
        let retired = retirement(PREFIX, name, INTERVAL, late).expect("retirement");
        assert_eq!(secs(retired) - secs(tick), 2400);
    }

    #[test]
    fn the_recorded_interval_governs_and_zero_means_none_recorded() {
        assert_eq!(
            governing_interval(Some(1200), INTERVAL),
            Duration::from_secs(1200)
        );
        assert_eq!(
            governing_interval(Some(300), INTERVAL),
            Duration::from_secs(300)
        );
        assert_eq!(governing_interval(Some(0), INTERVAL), INTERVAL);
        assert_eq!(governing_interval(None, INTERVAL), INTERVAL);
        assert_eq!(slack(INTERVAL), Duration::from_secs(60));
        assert_eq!(slack(Duration::from_secs(20)), Duration::from_secs(2));
    }

    #[test]
    fn offsets_spread_evenly_over_the_interval() {
        // 1,000 users in 10 one-minute buckets: each within 30 % of the mean of 100.
        let mut buckets = [0u32; 10];
        for n in 0..1000 {
            let offset = offset(&format!("keyrot/iam/user-{n}"), INTERVAL);
            assert!(offset < 600);
            buckets[(offset / 60) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&count| (70..=130).contains(&count)),
            "{buckets:?}"
        );
    }

    #[test]
    fn the_epoch_edge_does_not_underflow() {
        let schedule = Schedule::of(PREFIX, "keyrot/iam/x", INTERVAL).expect("schedule");
        assert!(schedule.latest_at_or_before(at(0)).is_none() || schedule.offset == 0);
        assert!(schedule.first_at_or_after(at(0)).is_some());
    }
}
