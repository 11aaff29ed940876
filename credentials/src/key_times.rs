//! From the API's answer to the times the cache keeps, in this machine's clock. `Expiration`
//! and `RefreshAfter` are the server's times: measured against the response's `Date`, they
//! become durations, added to the local time the answer arrived, so a skewed local clock
//! neither serves a key past its promise nor refetches in a loop. Two bounds hold whatever the
//! answer or the cache file says: no key is trusted longer than keyrot can promise one, and a
//! fetch that brings back the same key pushes the next one further away.

use crate::api::ActiveKey;
use crate::cache::CachedKey;
use crate::clock::{rfc3339, Seconds};
use crate::provider::ProviderError;

/// Floor between fetches, whatever `RefreshAfter` says: a clock or API bug must not turn every
/// AWS call into an API call.
pub const MIN_REFRESH_SECONDS: Seconds = 2;
/// The longest a key is trusted after its fetch. The API does not tell the helper its rotation
/// interval, so this is keyrot's longest promise at the longest interval it allows: three
/// intervals (docs/rotation.md) of 240 minutes (template.yaml, RotationIntervalMinutes).
pub const MAX_PROMISE_SECONDS: Seconds = 3 * 240 * 60;
/// After a fetch returned the key already cached, the next waits at least this long, doubling
/// with each further same key up to `MAX_BACKOFF_SECONDS`: a host whose clock runs ahead sees
/// every `RefreshAfter` as past and would otherwise fetch every `MIN_REFRESH_SECONDS`.
const FIRST_BACKOFF_SECONDS: Seconds = 5;
/// Low enough that a late rotation's new key is picked up within minutes (the cached key stays
/// valid meanwhile, and no refresh is ever put after its `Expiration`).
const MAX_BACKOFF_SECONDS: Seconds = 300;

/// The minimum wait before the fetch after one that returned `id`: none when the key changed,
/// else the previous wait doubled, from `FIRST_BACKOFF_SECONDS` up to `MAX_BACKOFF_SECONDS`.
pub fn next_backoff(previous_id: Option<&str>, previous_backoff: Seconds, id: &str) -> Seconds {
    if previous_id != Some(id) {
        return 0;
    }
    previous_backoff
        .saturating_mul(2)
        .clamp(FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
}

/// How far this clock is ahead of the server's, by the response's `Date`; 0 without one (the
/// behaviour before `Date` was read) and within 1 s (`Date` has whole seconds: that much is
/// rounding, not skew).
fn clock_offset(received_at: Seconds, server_date: Option<Seconds>) -> Seconds {
    match server_date.map(|date| received_at.saturating_sub(date)) {
        Some(offset) if offset.unsigned_abs() > 1 => offset,
        _ => 0,
    }
}

/// The key as cached, received at `received_at` (this clock), with its refresh time: the API's
/// `RefreshAfter`, else (an API older than the key lifetime contract) halfway to `Expiration`;
/// never after `Expiration`, never later than `MAX_PROMISE_SECONDS` from now, and at least
/// `MIN_REFRESH_SECONDS` or `backoff` away.
pub fn cached_key(
    key: ActiveKey,
    received_at: Seconds,
    backoff: Seconds,
) -> Result<CachedKey, ProviderError> {
    let offset = clock_offset(received_at, key.server_date);
    let local = |at: Seconds| at.checked_add(offset).ok_or(ProviderError::OutOfRange);
    let expiration = local(key.expiration)?;
    if expiration <= received_at {
        return Err(ProviderError::AlreadyExpired(
            rfc3339(key.expiration).unwrap_or_default(),
        ));
    }
    let cap = received_at
        .checked_add(MAX_PROMISE_SECONDS)
        .ok_or(ProviderError::OutOfRange)?;
    let expiration = expiration.min(cap);
    let halfway = received_at.saturating_add(expiration.saturating_sub(received_at) / 2);
    let floor = received_at
        .checked_add(MIN_REFRESH_SECONDS.max(backoff))
        .ok_or(ProviderError::OutOfRange)?;
    let refresh_after = match key.refresh_after {
        Some(at) => local(at)?,
        None => halfway,
    }
    .max(floor)
    .min(expiration);
    Ok(CachedKey {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        expiration,
        refresh_after,
        fetched_at: received_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn key(
        expiration: Seconds,
        refresh_after: Option<Seconds>,
        date: Option<Seconds>,
    ) -> ActiveKey {
        ActiveKey {
            access_key_id: "K".into(),
            secret_access_key: Secret::new("secret"),
            expiration,
            refresh_after,
            server_date: date,
        }
    }

    #[test]
    fn refresh_after_is_bounded_by_expiration_and_the_floor() {
        let cached = |k, at| cached_key(k, at, 0).expect("ok");
        assert_eq!(
            cached(key(1_100, Some(5_000), None), 1_000).refresh_after,
            1_100
        );
        assert_eq!(
            cached(key(1_100, Some(900), None), 1_000).refresh_after,
            1_000 + MIN_REFRESH_SECONDS
        );
        assert!(matches!(
            cached_key(key(1_000, None, None), 1_000, 0),
            Err(ProviderError::AlreadyExpired(_))
        ));
        assert!(cached_key(key(Seconds::MAX, None, Some(0)), 1_000, 0).is_err());
    }

    #[test]
    fn server_times_are_converted_with_the_date_header() {
        // This clock is 600 s behind the server's: the key's 1_200 s of promise and 660 s to
        // the refresh count from this clock's 1_000, not from the server's numbers.
        let slow = cached_key(key(2_800, Some(2_260), Some(1_600)), 1_000, 0).expect("ok");
        assert_eq!(
            (slow.expiration, slow.refresh_after),
            (1_200 + 1_000, 1_660)
        );
        // 600 s ahead: without Date the key would look already expired.
        let fast = cached_key(key(1_500, Some(1_050), Some(400)), 1_000, 0).expect("ok");
        assert_eq!((fast.expiration, fast.refresh_after), (2_100, 1_650));
        // Without Date, or within Date's rounding, the server's times are taken as they are.
        for date in [None, Some(999), Some(1_001)] {
            let same = cached_key(key(2_000, Some(1_500), date), 1_000, 0).expect("ok");
            assert_eq!(
                (same.expiration, same.refresh_after),
                (2_000, 1_500),
                "{date:?}"
            );
        }
    }

    #[test]
    fn no_promise_is_trusted_beyond_the_longest_keyrot_makes() {
        let far = cached_key(
            key(1_000 + 30 * 86_400, Some(1_000 + 86_400), None),
            1_000,
            0,
        )
        .expect("ok");
        assert_eq!(far.expiration, 1_000 + MAX_PROMISE_SECONDS);
        assert_eq!(far.refresh_after, 1_000 + MAX_PROMISE_SECONDS);
        let extreme = cached_key(key(Seconds::MAX, None, None), Seconds::MIN, 0).expect("ok");
        assert_eq!(extreme.expiration, Seconds::MIN + MAX_PROMISE_SECONDS);
    }

    #[test]
    fn the_same_key_again_backs_off_doubling_up_to_a_cap() {
        assert_eq!(next_backoff(None, 0, "K1"), 0);
        assert_eq!(
            next_backoff(Some("K0"), 160, "K1"),
            0,
            "a new key resets it"
        );
        let mut backoff = 0;
        let mut seen = Vec::new();
        for _ in 0..8 {
            backoff = next_backoff(Some("K1"), backoff, "K1");
            seen.push(backoff);
        }
        assert_eq!(seen, [5, 10, 20, 40, 80, 160, 300, 300]);
        let cached = cached_key(key(5_000, Some(900), None), 1_000, 20).expect("ok");
        assert_eq!(cached.refresh_after, 1_020, "the backoff is the floor");
    }
}
