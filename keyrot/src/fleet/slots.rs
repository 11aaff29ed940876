//! When each secret rotates: at a fixed offset within the interval, derived from its name, so
//! a fleet onboarded at once still rotates evenly spread instead of in the same second.

use aws_lc_rs::digest;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The secret's offset within the interval, in whole seconds: a hash of its name (uniform,
/// stable across runs, deploys and instances, and independent of who else is managed).
pub fn offset(secret_name: &str, interval: Duration) -> u64 {
    let hash = digest::digest(&digest::SHA256, secret_name.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_ref()[..8]);
    u64::from_be_bytes(first) % interval.as_secs().max(1)
}

/// The secret's latest slot at or before `at`: the instant its rotation is due.
pub fn latest_slot(secret_name: &str, interval: Duration, at: SystemTime) -> Option<SystemTime> {
    let period = interval.as_secs().max(1);
    let now = at.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let offset = offset(secret_name, interval);
    // Slots are offset + k·period; the latest one not after now.
    let since_offset = now.checked_sub(offset)?;
    let slot = offset.checked_add(since_offset - since_offset % period)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(slot))
}

/// When the secret should next be rotated, if that is at or before `horizon`: its latest slot
/// up to the horizon, unless it has rotated since (an early rotation by anyone counts).
pub fn due_at(
    secret_name: &str,
    interval: Duration,
    last_rotated: Option<SystemTime>,
    horizon: SystemTime,
) -> Option<SystemTime> {
    let slot = latest_slot(secret_name, interval, horizon)?;
    match last_rotated {
        Some(last) if last >= slot => None,
        _ => Some(slot),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(600);

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
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
    fn a_secret_is_due_once_per_interval() {
        let name = "keyrot/iam/alice";
        let offset = offset(name, INTERVAL);
        // 1,800,000,000 is a multiple of 600: slots of this secret are offset + k·600.
        let slot = 1_800_000_000 + offset;
        // Never rotated: due at its latest slot.
        assert_eq!(due_at(name, INTERVAL, None, at(slot + 5)), Some(at(slot)));
        // Rotated at the slot: not due again until the next one.
        assert_eq!(due_at(name, INTERVAL, Some(at(slot)), at(slot + 599)), None);
        assert_eq!(
            due_at(name, INTERVAL, Some(at(slot)), at(slot + 600)),
            Some(at(slot + 600))
        );
        // An early rotation (an operator's, 4 minutes before the slot) counts for the slot
        // before it only; the slot itself still rotates.
        assert_eq!(
            due_at(name, INTERVAL, Some(at(slot - 240)), at(slot)),
            Some(at(slot))
        );
        // An early rotation after the slot covers it.
        assert_eq!(
            due_at(name, INTERVAL, Some(at(slot + 60)), at(slot + 300)),
            None
        );
    }

    #[test]
    fn the_epoch_edge_does_not_underflow() {
        assert_eq!(
            latest_slot("x", INTERVAL, at(0)).is_none(),
            offset("x", INTERVAL) > 0
        );
    }
}
