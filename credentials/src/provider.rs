//! Deciding whether to call the API: serve the cache while no newer key is expected, otherwise
//! fetch under the cache lock (re-reading first, so concurrent starts make one fetch), reuse
//! the cached token while it has life left, and fall back to a still-valid cached key when the
//! API is down or busy.

use crate::api::{ActiveKey, ApiError, KeyApi};
use crate::cache::{Cache, CachedKey, CachedToken, Entry, Loaded};
use crate::clock::{rfc3339, Clock, Seconds};
use std::time::Duration;

/// Floor between fetches, whatever `RefreshAfter` says: a clock or API bug must not turn every
/// AWS call into an API call.
const MIN_REFRESH_SECONDS: Seconds = 2;
/// A token is not sent in its last 30 s (or last quarter, for short TTLs).
const TOKEN_MARGIN_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("the API's key expired at {0}, before it was fetched: check this machine's clock")]
    AlreadyExpired(String),
    #[error("the API's times are out of range")]
    OutOfRange,
}

/// The key to hand out and what the user should hear about how it was obtained.
#[derive(Debug)]
pub struct Outcome {
    pub key: CachedKey,
    pub warnings: Vec<String>,
}

pub struct Provider<'a> {
    pub api: &'a dyn KeyApi,
    pub cache: &'a Cache,
    pub clock: &'a dyn Clock,
    pub user: &'a str,
    pub api_url: &'a str,
    /// Longest wait for another process's fetch.
    pub lock_wait: Duration,
}

impl Provider<'_> {
    pub fn current(&self) -> Result<Outcome, ProviderError> {
        let mut warnings = Vec::new();
        let entry = self.load(&mut warnings);
        if let Some(key) = entry.as_ref().and_then(|e| e.key.as_ref()) {
            if key.is_fresh(self.clock.now()) {
                return Ok(Outcome {
                    key: key.clone(),
                    warnings,
                });
            }
        }
        let lock = self.cache.lock(self.lock_wait);
        if lock.is_none() {
            warnings.push(format!(
                "could not lock {} in time; fetching without the lock",
                self.cache.path().display()
            ));
        }
        // Another process may have fetched while this one waited for the lock.
        let entry = match self.cache.load() {
            Loaded::Found(entry) => entry,
            _ => entry.unwrap_or_else(|| Entry::new(self.api_url, self.user)),
        };
        if let Some(key) = entry.key.as_ref().filter(|k| k.is_fresh(self.clock.now())) {
            return Ok(Outcome {
                key: key.clone(),
                warnings,
            });
        }
        match self.fetch(&entry) {
            Ok(fresh) => {
                let key = fresh.key.clone();
                if let Err(error) = self.cache.store(&fresh) {
                    warnings.push(format!(
                        "cannot write the cache {}: {error}",
                        self.cache.path().display()
                    ));
                }
                drop(lock);
                key.map(|key| Outcome { key, warnings })
                    .ok_or(ProviderError::OutOfRange)
            }
            Err(ProviderError::Api(error)) if error.is_transient() => {
                match entry.key.filter(|k| k.is_valid(self.clock.now())) {
                    Some(key) => {
                        warnings.push(format!(
                            "{error}; serving the cached key, valid until {}",
                            rfc3339(key.expiration).unwrap_or_default()
                        ));
                        Ok(Outcome { key, warnings })
                    }
                    None => Err(error.into()),
                }
            }
            Err(error) => Err(error),
        }
    }

    fn load(&self, warnings: &mut Vec<String>) -> Option<Entry> {
        match self.cache.load() {
            Loaded::Found(entry) => Some(entry),
            Loaded::Missing => None,
            Loaded::Corrupt(why) => {
                warnings.push(format!(
                    "ignoring corrupt cache file {} ({why}); it will be rewritten",
                    self.cache.path().display()
                ));
                None
            }
        }
    }

    /// A new entry with a fresh key, reusing the cached token while it lasts.
    fn fetch(&self, entry: &Entry) -> Result<Entry, ProviderError> {
        let now = self.clock.now();
        let cached_token = entry.token.clone().filter(|token| now < token.reuse_until);
        let (token, key) = match cached_token {
            Some(token) => match self.api.active_key(&token.value, self.user) {
                // The cached token may have been refused for reasons of its own (its signing
                // key retired early): one fresh token settles whether the API key is at fault.
                Err(ApiError::TokenRefused) => self.with_new_token()?,
                other => (token, other?),
            },
            None => self.with_new_token()?,
        };
        let mut fresh = Entry::new(self.api_url, self.user);
        fresh.key = Some(cached_key(key, self.clock.now())?);
        fresh.token = Some(token);
        Ok(fresh)
    }

    fn with_new_token(&self) -> Result<(CachedToken, ActiveKey), ProviderError> {
        let issued_at = self.clock.now();
        let token = self.api.generate_token()?;
        let key = self
            .api
            .active_key(&token.value, self.user)
            .map_err(|e| match e {
                ApiError::TokenRefused => ApiError::ApiKeyRefused,
                other => other,
            })?;
        let margin = TOKEN_MARGIN_SECONDS.min(token.expires_in / 4);
        let life = Seconds::try_from(token.expires_in.saturating_sub(margin))
            .map_err(|_| ProviderError::OutOfRange)?;
        let reuse_until = issued_at
            .checked_add(life)
            .ok_or(ProviderError::OutOfRange)?;
        Ok((
            CachedToken {
                value: token.value,
                reuse_until,
            },
            key,
        ))
    }
}

/// The key as cached, with its refresh time: the API's `RefreshAfter`, else (an API older than
/// the key lifetime contract) halfway to `Expiration`; never after `Expiration`, and at least
/// `MIN_REFRESH_SECONDS` away.
fn cached_key(key: ActiveKey, fetched_at: Seconds) -> Result<CachedKey, ProviderError> {
    if key.expiration <= fetched_at {
        return Err(ProviderError::AlreadyExpired(
            rfc3339(key.expiration).unwrap_or_default(),
        ));
    }
    let halfway = key
        .expiration
        .checked_sub(fetched_at)
        .map(|life| fetched_at.saturating_add(life / 2))
        .ok_or(ProviderError::OutOfRange)?;
    let floor = fetched_at
        .checked_add(MIN_REFRESH_SECONDS)
        .ok_or(ProviderError::OutOfRange)?;
    let refresh_after = key
        .refresh_after
        .unwrap_or(halfway)
        .max(floor)
        .min(key.expiration);
    Ok(CachedKey {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        expiration: key.expiration,
        refresh_after,
        fetched_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Token;
    use crate::secret::Secret;
    use std::cell::{Cell, RefCell};
    use std::path::PathBuf;

    struct FakeClock(Cell<Seconds>);
    impl Clock for FakeClock {
        fn now(&self) -> Seconds {
            self.0.get()
        }
    }

    /// Answers from a script of results and counts the calls.
    #[derive(Default)]
    struct FakeApi {
        tokens: Cell<u32>,
        keys: Cell<u32>,
        key_results: RefCell<Vec<Result<ActiveKey, ApiError>>>,
        token_refused: Cell<bool>,
    }

    impl KeyApi for FakeApi {
        fn generate_token(&self) -> Result<Token, ApiError> {
            self.tokens.set(self.tokens.get() + 1);
            if self.token_refused.get() {
                return Err(ApiError::ApiKeyRefused);
            }
            Ok(Token {
                value: Secret::new(format!("token-{}", self.tokens.get())),
                expires_in: 120,
            })
        }
        fn active_key(&self, _token: &Secret, _user: &str) -> Result<ActiveKey, ApiError> {
            self.keys.set(self.keys.get() + 1);
            self.key_results
                .borrow_mut()
                .pop()
                .unwrap_or(Err(ApiError::Server(500)))
        }
    }

    fn key(id: &str, expiration: Seconds, refresh_after: Option<Seconds>) -> ActiveKey {
        ActiveKey {
            access_key_id: id.into(),
            secret_access_key: Secret::new("secret"),
            expiration,
            refresh_after,
        }
    }

    struct World {
        dir: PathBuf,
        cache: Cache,
        clock: FakeClock,
        api: FakeApi,
    }

    impl World {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("keyrot-provider-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self {
                cache: Cache::new(&dir, "http://127.0.0.1:1/v1", &Secret::new("k"), "alice"),
                dir,
                clock: FakeClock(Cell::new(1_000)),
                api: FakeApi::default(),
            }
        }
        fn answers(&self, mut results: Vec<Result<ActiveKey, ApiError>>) {
            results.reverse();
            *self.api.key_results.borrow_mut() = results;
        }
        fn current(&self) -> Result<Outcome, ProviderError> {
            Provider {
                api: &self.api,
                cache: &self.cache,
                clock: &self.clock,
                user: "alice",
                api_url: "http://127.0.0.1:1/v1",
                lock_wait: Duration::from_secs(1),
            }
            .current()
        }
        fn at(&self, now: Seconds) -> &Self {
            self.clock.0.set(now);
            self
        }
    }

    impl Drop for World {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[test]
    fn serves_the_cache_until_refresh_after_then_fetches_with_the_same_token() {
        let world = World::new("refresh");
        world.answers(vec![
            Ok(key("K1", 2_200, Some(1_060))),
            Ok(key("K2", 2_800, Some(1_650))),
        ]);
        assert_eq!(world.current().expect("first").key.access_key_id, "K1");
        assert_eq!(
            world.at(1_059).current().expect("hit").key.access_key_id,
            "K1"
        );
        assert_eq!((world.api.tokens.get(), world.api.keys.get()), (1, 1));
        let second = world.at(1_060).current().expect("refresh");
        assert_eq!(second.key.access_key_id, "K2");
        assert_eq!(second.key.expiration, 2_800, "the real Expiration is kept");
        assert_eq!(
            (world.api.tokens.get(), world.api.keys.get()),
            (1, 2),
            "the token (120 s, reusable for 90 s) was reused"
        );
    }

    #[test]
    fn a_token_near_its_end_is_replaced() {
        let world = World::new("token");
        world.answers(vec![
            Ok(key("K1", 2_200, Some(1_010))),
            Ok(key("K2", 2_800, Some(1_200))),
        ]);
        world.current().expect("first");
        world.at(1_091).current().expect("second");
        assert_eq!(world.api.tokens.get(), 2);
    }

    #[test]
    fn without_refresh_after_it_refreshes_halfway_to_expiration() {
        let world = World::new("halfway");
        world.answers(vec![Ok(key("K1", 1_600, None))]);
        assert_eq!(world.current().expect("first").key.refresh_after, 1_300);
    }

    #[test]
    fn refresh_after_is_bounded_by_expiration_and_the_floor() {
        assert_eq!(
            cached_key(key("K", 1_100, Some(5_000)), 1_000)
                .expect("ok")
                .refresh_after,
            1_100
        );
        assert_eq!(
            cached_key(key("K", 1_100, Some(900)), 1_000)
                .expect("ok")
                .refresh_after,
            1_000 + MIN_REFRESH_SECONDS
        );
        assert!(matches!(
            cached_key(key("K", 1_000, None), 1_000),
            Err(ProviderError::AlreadyExpired(_))
        ));
        assert!(cached_key(key("K", Seconds::MAX, None), Seconds::MIN).is_err());
    }

    #[test]
    fn a_down_api_is_bridged_by_a_valid_cache_only() {
        let world = World::new("down");
        world.answers(vec![
            Ok(key("K1", 2_000, Some(1_500))),
            Err(ApiError::Unreachable("refused".into())),
            Err(ApiError::Throttled),
        ]);
        world.current().expect("first");
        let bridged = world.at(1_600).current().expect("served from cache");
        assert_eq!(bridged.key.access_key_id, "K1");
        assert!(bridged.warnings[0].contains("serving the cached key"));
        let expired = world.at(2_000).current();
        assert!(matches!(
            expired,
            Err(ProviderError::Api(ApiError::Throttled))
        ));
    }

    #[test]
    fn a_refusal_is_not_bridged() {
        let world = World::new("refusal");
        world.answers(vec![
            Ok(key("K1", 2_000, Some(1_500))),
            Err(ApiError::UserNotAllowed("alice".into())),
        ]);
        world.current().expect("first");
        assert!(matches!(
            world.at(1_600).current(),
            Err(ProviderError::Api(ApiError::UserNotAllowed(_)))
        ));
    }

    #[test]
    fn a_refused_cached_token_is_replaced_once() {
        let world = World::new("retoken");
        world.answers(vec![
            Ok(key("K1", 2_000, Some(1_010))),
            Err(ApiError::TokenRefused),
            Ok(key("K2", 2_500, Some(1_500))),
        ]);
        world.current().expect("first");
        assert_eq!(
            world.at(1_020).current().expect("retry").key.access_key_id,
            "K2"
        );
        assert_eq!(world.api.tokens.get(), 2);
    }

    #[test]
    fn a_refused_api_key_says_so() {
        let world = World::new("apikey");
        world.api.token_refused.set(true);
        assert!(matches!(
            world.current(),
            Err(ProviderError::Api(ApiError::ApiKeyRefused))
        ));
    }

    #[test]
    fn a_corrupt_cache_is_reported_and_rewritten() {
        let world = World::new("corrupt");
        std::fs::create_dir_all(&world.dir).expect("dir");
        std::fs::write(world.cache.path(), b"\x00garbage").expect("write");
        world.answers(vec![Ok(key("K1", 2_000, Some(1_500)))]);
        let outcome = world.current().expect("fetched");
        assert!(outcome.warnings[0].contains("corrupt cache file"));
        assert!(matches!(world.cache.load(), Loaded::Found(_)));
    }
}
