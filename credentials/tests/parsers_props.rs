//! Properties of the helper's own parsers of untrusted input: the API's times and `Date`
//! header, and whatever bytes sit in a cache file. None may panic, and none may make the
//! helper trust a key for longer than keyrot ever promises one.

use keyrot_credentials::api::ActiveKey;
use keyrot_credentials::cache::{Cache, CachedKey, Entry, Loaded};
use keyrot_credentials::clock::{parse_http_date, parse_rfc3339, rfc3339, Seconds};
use keyrot_credentials::http::{key_from_body, token_from_body};
use keyrot_credentials::key_times::{cached_key, MAX_PROMISE_SECONDS, MIN_REFRESH_SECONDS};
use keyrot_credentials::secret::Secret;
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;

/// Times around now, and the extremes the arithmetic must survive.
fn any_time() -> impl Strategy<Value = Seconds> {
    prop_oneof![
        1_700_000_000i64..1_900_000_000i64,
        Just(i64::MIN),
        Just(i64::MAX),
        any::<i64>(),
    ]
}

proptest! {
    #[test]
    fn the_time_parsers_take_any_text_and_round_trip_their_own(
        text in ".{0,64}",
        at in 0i64..253_402_300_799i64,
    ) {
        let _ = parse_rfc3339(&text);
        let _ = parse_http_date(&text);
        let written = rfc3339(at).expect("a representable time");
        prop_assert_eq!(parse_rfc3339(&written), Some(at));
    }

    #[test]
    fn a_served_key_is_never_trusted_past_keyrots_longest_promise(
        expiration in any_time(),
        refresh_after in proptest::option::of(any_time()),
        server_date in proptest::option::of(any_time()),
        received_at in 1_700_000_000i64..1_900_000_000i64,
        backoff in 0i64..100_000,
    ) {
        let key = ActiveKey {
            access_key_id: "AKIAPROPERTY".into(),
            secret_access_key: Secret::new("secret"),
            expiration,
            refresh_after,
            server_date,
        };
        if let Ok(cached) = cached_key(key, received_at, backoff) {
            prop_assert_eq!(cached.fetched_at, received_at);
            prop_assert!(cached.expiration > received_at);
            prop_assert!(cached.expiration <= received_at + MAX_PROMISE_SECONDS);
            prop_assert!(cached.refresh_after <= cached.expiration);
            let floor = received_at + MIN_REFRESH_SECONDS.max(backoff);
            prop_assert!(cached.refresh_after >= floor.min(cached.expiration));
        }
    }

    #[test]
    fn a_cached_key_is_capped_at_its_fetch_plus_the_longest_promise(
        expiration in any_time(),
        refresh_after in any_time(),
        fetched_at in any_time(),
    ) {
        let capped = CachedKey {
            access_key_id: "AKIAPROPERTY".into(),
            secret_access_key: Secret::new("secret"),
            expiration,
            refresh_after,
            fetched_at,
        }
        .capped();
        prop_assert!(capped.expiration <= fetched_at.saturating_add(MAX_PROMISE_SECONDS));
        prop_assert!(capped.refresh_after <= capped.expiration);
        for now in [fetched_at, fetched_at.saturating_add(1), capped.expiration] {
            prop_assert!(!capped.is_fresh(now) || capped.is_valid(now));
        }
    }
}

/// Bodies as an API (or anything in between) might answer: JSON-ish text built from the
/// fields the helper reads, and raw bytes.
fn any_body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        Just("\"UserName\""),
        Just("\"AccessKeyId\""),
        Just("\"SecretAccessKey\""),
        Just("\"Expiration\""),
        Just("\"RefreshAfter\""),
        Just("\"token\""),
        Just("\"expires_in\""),
    ];
    let value = prop_oneof![
        Just("\"alice\"".to_owned()),
        Just("\"mallory\"".to_owned()),
        Just("\"2026-12-07T22:00:00Z\"".to_owned()),
        Just("\"9999-99-99T99:99:99Z\"".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        ".{0,12}".prop_map(|text| format!("{text:?}")),
        Just("null".to_owned()),
    ];
    prop_oneof![
        proptest::collection::vec((field, value), 0..7).prop_map(|pairs| {
            let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", fields.join(",")).into_bytes()
        }),
        proptest::collection::vec(any::<u8>(), 0..128),
    ]
}

proptest! {
    /// Whatever comes back from the network, parsing never panics, and a key is accepted only
    /// for the user asked about, with times that parse.
    #[test]
    fn api_bodies_never_panic_and_only_the_asked_users_key_is_taken(
        body in any_body(),
        date in proptest::option::of(any_time()),
    ) {
        let _ = token_from_body(&body);
        if let Ok(key) = key_from_body(&body, "alice", date) {
            let text = String::from_utf8_lossy(&body);
            prop_assert!(!text.contains("\"UserName\":\"mallory\""), "{text}");
            prop_assert_eq!(key.server_date, date);
        }
    }
}

/// A private cache directory of this test's own.
fn private_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("keyrot-props-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes in the cache file, and any entry a hostile or old writer could leave:
    /// loading never panics, and a key it hands back is capped as if fetched then.
    #[test]
    fn whatever_the_cache_file_holds_loading_never_trusts_more_than_a_fetch(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        expiration in any_time(),
        refresh_after in any_time(),
        fetched_at in any_time(),
        format in 0u32..3,
    ) {
        let dir = private_dir("cache");
        let cache = Cache::new(&dir, "https://api.example/v1", &Secret::new("api-key"), "alice");
        std::fs::write(cache.path(), &bytes).expect("write");
        let _ = cache.load();
        let entry = Entry {
            format,
            api: "https://api.example/v1".into(),
            user: "alice".into(),
            key: Some(CachedKey {
                access_key_id: "AKIAPROPERTY".into(),
                secret_access_key: Secret::new("secret"),
                expiration,
                refresh_after,
                fetched_at,
            }),
            token: None,
            refetch_backoff: 0,
        };
        std::fs::write(cache.path(), serde_json::to_vec(&entry).expect("json")).expect("write");
        if let Loaded::Found(found) = cache.load() {
            let key = found.key.expect("the key");
            prop_assert!(key.expiration <= fetched_at.saturating_add(MAX_PROMISE_SECONDS));
            prop_assert!(key.refresh_after <= key.expiration);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
