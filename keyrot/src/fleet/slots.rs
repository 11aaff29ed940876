//! When the fleet rotates each secret: at its slot's ticks (see [`crate::key_slots`]), so a
//! fleet onboarded at once still rotates evenly spread instead of in the same second.

use crate::key_slots::Schedule;
use std::time::{Duration, SystemTime};

/// When the secret should next be rotated, if that is at or before `horizon`: its latest tick
/// up to the horizon, unless it has rotated since (an early rotation by anyone counts).
pub fn due_at(
    prefix: &str,
    secret_name: &str,
    interval: Duration,
    last_rotated: Option<SystemTime>,
    horizon: SystemTime,
) -> Option<SystemTime> {
    let tick = Schedule::of(prefix, secret_name, interval)?.latest_at_or_before(horizon)?;
    match last_rotated {
        Some(last) if last >= tick => None,
        _ => Some(tick),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_slots::offset;
    use std::time::UNIX_EPOCH;

    const PREFIX: &str = "keyrot/iam/";
    const INTERVAL: Duration = Duration::from_secs(600);

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn each_slot_is_due_once_per_two_intervals_and_the_user_once_per_interval() {
        let a = "keyrot/iam/alice";
        let b = "keyrot/iam/alice/b";
        // 1,800,000,000 is a multiple of 1,200: slot A ticks at offset + k·1200.
        let tick_a = 1_800_000_000 + offset(a, INTERVAL);
        let tick_b = tick_a + 600;
        // Never rotated: due at its latest tick.
        assert_eq!(
            due_at(PREFIX, a, INTERVAL, None, at(tick_a + 5)),
            Some(at(tick_a))
        );
        // Rotated at the tick: not due again until two intervals on.
        assert_eq!(
            due_at(PREFIX, a, INTERVAL, Some(at(tick_a)), at(tick_a + 1199)),
            None
        );
        assert_eq!(
            due_at(PREFIX, a, INTERVAL, Some(at(tick_a)), at(tick_a + 1200)),
            Some(at(tick_a + 1200))
        );
        // Slot B in between.
        assert_eq!(
            due_at(PREFIX, b, INTERVAL, Some(at(tick_a)), at(tick_b)),
            Some(at(tick_b))
        );
        // An early rotation (4 minutes before the tick) counts for the tick before it only.
        assert_eq!(
            due_at(PREFIX, a, INTERVAL, Some(at(tick_a - 240)), at(tick_a)),
            Some(at(tick_a))
        );
        // An early rotation after the tick covers it.
        assert_eq!(
            due_at(PREFIX, a, INTERVAL, Some(at(tick_a + 60)), at(tick_a + 300)),
            None
        );
        // A name outside the prefix has no schedule.
        assert_eq!(
            due_at(PREFIX, "other/alice", INTERVAL, None, at(tick_a)),
            None
        );
    }
}
