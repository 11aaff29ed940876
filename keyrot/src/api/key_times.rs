//! The two times `GET /active-key` answers with, from the key lifetime contract
//! (docs/rotation.md). Each key's interval is [`key_slots::governing_interval`].
//!
//! * `Expiration`: a promise. keyrot does not delete or deactivate the key before then.
//!   - A key of a slot (its value records `ExpiresAt`): that tick, when keyrot retires it. A
//!     fetch just before the other slot's newer key takes over still gets about one interval
//!     minus that rotation's duration. It is never less than the slack after the fetch: the
//!     rotator keeps a key that long after the other slot's rotation completed.
//!   - A key of a user with one secret: one interval after the fetch.
//! * `RefreshAfter`: when a newer key is expected: the other slot's next tick plus the slack
//!   (one secret: one interval after the key was created, plus the slack). Never earlier than
//!   the slack from now, so that a client refreshing on time and getting the same key again
//!   does not spin, and never after `Expiration`.

use crate::iam_key::IamKeySecret;
use crate::key_slots;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub expiration: SystemTime,
    pub refresh_after: SystemTime,
}

impl KeyTimes {
    /// `configured` is api-fn's own interval, for values that record none. `other_slot` is
    /// the other slot's schedule and its key's `ExpiresAt`, for a user with two slots: the
    /// other slot mints the next key at its first tick after this key was created that is not
    /// before its own key's retirement (a tick before that carries its key forward). If that
    /// tick has passed, the other slot is late and the client retries after the slack.
    pub fn of(
        key: &IamKeySecret,
        version_created: SystemTime,
        fetched_at: SystemTime,
        configured: Duration,
        other_slot: Option<(key_slots::Schedule, Option<SystemTime>)>,
    ) -> Self {
        let interval = key_slots::governing_interval(key.interval_seconds, configured);
        let slack = key_slots::slack(interval);
        let fetched_at = whole_seconds(fetched_at);
        let earliest = fetched_at.checked_add(slack).unwrap_or(fetched_at);
        let expiration = match key.expires() {
            Some(retired) => whole_seconds(retired).max(earliest),
            None => fetched_at.checked_add(interval).unwrap_or(fetched_at),
        };
        let created = key.created().unwrap_or(version_created);
        let expected = match (key.expires(), other_slot) {
            (Some(_), Some((schedule, their_retirement))) => schedule
                .first_at_or_after(created.max(their_retirement.unwrap_or(created)))
                .and_then(|tick| tick.checked_add(slack)),
            _ => created
                .checked_add(interval)
                .and_then(|t| t.checked_add(slack)),
        }
        .unwrap_or(expiration);
        Self {
            expiration,
            refresh_after: whole_seconds(expected.max(earliest)).min(expiration),
        }
    }
}

/// Rounds down to a whole second, as RFC 3339 times are written here.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let seconds = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn key(created: Option<&str>, interval_seconds: Option<u64>) -> IamKeySecret {
        IamKeySecret {
            user_name: "alice".into(),
            access_key_id: Some("AKIA1".into()),
            secret_access_key: Some("s".into()),
            created_at: created.map(str::to_owned),
            interval_seconds,
            expires_at: None,
            current_since: None,
        }
    }

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[test]
    fn a_recorded_interval_of_zero_promises_the_configured_interval() {
        let times = KeyTimes::of(&key(None, Some(0)), at(1000), at(1000), TEN_MINUTES, None);
        assert_eq!(times.expiration, at(1600));
    }

    #[test]
    fn expiration_is_one_interval_after_the_fetch() {
        // Key created at 1_800_000_000 (2027-01-15T08:00:00Z), fetched 2 minutes later.
        let key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        let times = KeyTimes::of(
            &key,
            at(1_800_000_000),
            at(1_800_000_120),
            TEN_MINUTES,
            None,
        );
        assert_eq!(times.expiration, at(1_800_000_720));
        assert_eq!(times.refresh_after, at(1_800_000_660));
    }

    #[test]
    fn a_late_rotation_moves_refresh_after_forward_but_never_past_expiration() {
        let key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        let fetched = at(1_800_000_000 + 900);
        let times = KeyTimes::of(&key, at(1_800_000_000), fetched, TEN_MINUTES, None);
        assert_eq!(times.expiration, at(1_800_001_500));
        assert_eq!(times.refresh_after, at(1_800_000_960));
        assert!(times.refresh_after <= times.expiration);
    }

    #[test]
    fn the_secrets_interval_wins_over_the_configured_one() {
        let key = key(None, Some(1200));
        let times = KeyTimes::of(&key, at(1_000), at(1_000), TEN_MINUTES, None);
        assert_eq!(times.expiration, at(2_200));
        let old_value = self::key(None, None);
        let times = KeyTimes::of(&old_value, at(1_000), at(1_000), TEN_MINUTES, None);
        assert_eq!(times.expiration, at(1_600));
    }

    #[test]
    fn fractions_of_a_second_are_dropped_from_the_promise() {
        let key = key(None, Some(600));
        let fetched = at(1_000) + Duration::from_millis(999);
        let times = KeyTimes::of(&key, at(1_000), fetched, TEN_MINUTES, None);
        assert_eq!(times.expiration, at(1_600));
    }

    /// Slot B of a user whose ticks fall at 1_800_000_600 + k·1200 (an offset of 0), its key
    /// retired at `retired` (seconds), if recorded.
    fn slot_b(retired: Option<u64>) -> (key_slots::Schedule, Option<SystemTime>) {
        let name = (0..)
            .map(|n| format!("keyrot/iam/user{n}"))
            .find(|name| key_slots::offset(name, TEN_MINUTES) == 0)
            .expect("a user whose offset is 0");
        let schedule = key_slots::Schedule::of("keyrot/iam/", &format!("{name}/b"), TEN_MINUTES)
            .expect("slot B");
        (schedule, retired.map(at))
    }

    #[test]
    fn a_slot_key_expires_at_its_retirement_tick_and_refreshes_after_the_other_slots_tick() {
        // Minted at 1_800_000_000 (2027-01-15T08:00:00Z) on slot A's tick; retired two
        // intervals later; slot B's next tick is one interval after the minting.
        let mut key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        key.expires_at = Some("2027-01-15T08:20:00Z".into());
        let times = KeyTimes::of(
            &key,
            at(1_800_000_000),
            at(1_800_000_120),
            TEN_MINUTES,
            Some(slot_b(Some(1_800_000_600))),
        );
        assert_eq!(times.expiration, at(1_800_001_200));
        assert_eq!(times.refresh_after, at(1_800_000_660));
        // Fetched just before slot B's new key takes over: about one interval left.
        let times = KeyTimes::of(
            &key,
            at(1_800_000_000),
            at(1_800_000_630),
            TEN_MINUTES,
            Some(slot_b(Some(1_800_000_600))),
        );
        assert_eq!(times.expiration, at(1_800_001_200));
        // Slot B is late: the client retries after the slack, not at slot B's next tick.
        assert_eq!(times.refresh_after, at(1_800_000_690));
    }

    #[test]
    fn a_slot_key_past_its_tick_is_promised_at_least_the_slack() {
        let mut key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        key.expires_at = Some("2027-01-15T08:20:00Z".into());
        let fetched = at(1_800_001_230);
        let times = KeyTimes::of(
            &key,
            at(1_800_000_000),
            fetched,
            TEN_MINUTES,
            Some(slot_b(Some(1_800_000_600))),
        );
        assert_eq!(times.expiration, at(1_800_001_290));
        assert_eq!(times.refresh_after, at(1_800_001_290));
    }

    #[test]
    fn a_newer_key_is_expected_only_at_a_tick_where_the_other_slot_may_retire_its_own() {
        // Just after onboarding: the newest key was made at 1_800_000_000; the other slot's
        // key is promised until 1_800_001_800, so that slot's tick at 1_800_000_600 carries
        // its key forward, and the next key comes at its tick at 1_800_001_800.
        let mut key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        key.expires_at = Some("2027-01-15T08:40:00Z".into());
        let times = KeyTimes::of(
            &key,
            at(1_800_000_000),
            at(1_800_000_010),
            TEN_MINUTES,
            Some(slot_b(Some(1_800_001_800))),
        );
        assert_eq!(times.refresh_after, at(1_800_001_860));
    }
}
