//! The two times `GET /active-key` answers with, from the key lifetime contract.
//!
//! * `Expiration`: a promise. keyrot does not delete or deactivate the key before then. It is
//!   one interval after the fetch: the rotator keeps a superseded key for one interval after
//!   it stops being AWSCURRENT, and the API only ever hands out the AWSCURRENT key.
//! * `RefreshAfter`: when a newer key is expected, one interval after the key was created
//!   plus a little for the next rotation to finish. A rotation can be late, so it is never
//!   earlier than a short retry delay from now: a client refreshing on time and getting the
//!   same key again does not spin.

use crate::iam_key::IamKeySecret;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bound of the retry delay and of the allowance for a rotation to finish.
const MAX_SLACK: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes {
    pub expiration: SystemTime,
    pub refresh_after: SystemTime,
}

impl KeyTimes {
    /// `configured` is api-fn's own interval, for values written before the secret recorded
    /// the interval its key is handed out under.
    pub fn of(
        key: &IamKeySecret,
        version_created: SystemTime,
        fetched_at: SystemTime,
        configured: Duration,
    ) -> Self {
        // A recorded interval of zero (a rotator keeping no promise, as tests run it) would
        // promise nothing: the configured interval applies then, as for an old value.
        let interval = key
            .interval()
            .filter(|recorded| !recorded.is_zero())
            .unwrap_or(configured);
        let fetched_at = whole_seconds(fetched_at);
        let expiration = fetched_at.checked_add(interval).unwrap_or(fetched_at);
        let slack = (interval / 10).clamp(Duration::from_secs(1), MAX_SLACK);
        let created = key.created().unwrap_or(version_created);
        let expected = created
            .checked_add(interval)
            .and_then(|t| t.checked_add(slack))
            .unwrap_or(expiration);
        let earliest = fetched_at.checked_add(slack).unwrap_or(expiration);
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
        }
    }

    const TEN_MINUTES: Duration = Duration::from_secs(600);

    #[test]
    fn a_recorded_interval_of_zero_promises_the_configured_interval() {
        let times = KeyTimes::of(&key(None, Some(0)), at(1000), at(1000), TEN_MINUTES);
        assert_eq!(times.expiration, at(1600));
    }

    #[test]
    fn expiration_is_one_interval_after_the_fetch() {
        // Key created at 1_800_000_000 (2027-01-15T08:00:00Z), fetched 2 minutes later.
        let key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        let times = KeyTimes::of(&key, at(1_800_000_000), at(1_800_000_120), TEN_MINUTES);
        assert_eq!(times.expiration, at(1_800_000_720));
        assert_eq!(times.refresh_after, at(1_800_000_660));
    }

    #[test]
    fn a_late_rotation_moves_refresh_after_forward_but_never_past_expiration() {
        let key = key(Some("2027-01-15T08:00:00Z"), Some(600));
        let fetched = at(1_800_000_000 + 900);
        let times = KeyTimes::of(&key, at(1_800_000_000), fetched, TEN_MINUTES);
        assert_eq!(times.expiration, at(1_800_001_500));
        assert_eq!(times.refresh_after, at(1_800_000_960));
        assert!(times.refresh_after <= times.expiration);
    }

    #[test]
    fn the_secrets_interval_wins_over_the_configured_one() {
        let key = key(None, Some(1200));
        let times = KeyTimes::of(&key, at(1_000), at(1_000), TEN_MINUTES);
        assert_eq!(times.expiration, at(2_200));
        let old_value = self::key(None, None);
        let times = KeyTimes::of(&old_value, at(1_000), at(1_000), TEN_MINUTES);
        assert_eq!(times.expiration, at(1_600));
    }

    #[test]
    fn fractions_of_a_second_are_dropped_from_the_promise() {
        let key = key(None, Some(600));
        let fetched = at(1_000) + Duration::from_millis(999);
        let times = KeyTimes::of(&key, at(1_000), fetched, TEN_MINUTES);
        assert_eq!(times.expiration, at(1_600));
    }
}
