//! Deciding whether to call the API: serve the cache while no newer key is expected, otherwise
//! fetch under the cache lock (re-reading first, so concurrent starts make one fetch), reuse
//! the cached token while it has life left, and fall back to a still-valid cached key when the
//! API is down or busy. The cache directory is checked before anything in it is read.

use crate::api::{ActiveKey, ApiError, KeyApi};
use crate::cache::{Cache, CachedKey, CachedToken, Entry, Loaded};
use crate::clock::{rfc3339, Clock, Seconds};
use crate::key_times::{cached_key, next_backoff};
use crate::private_dir::DirError;
use std::time::Duration;

/// A token is not sent in its last 30 s (or last quarter, for short TTLs).
const TOKEN_MARGIN_SECONDS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    CacheDir(#[from] DirError),
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
        self.cache.check_dir()?;
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
        let previous_id = entry.key.as_ref().map(|k| k.access_key_id.as_str());
        let backoff = next_backoff(previous_id, entry.refetch_backoff, &key.access_key_id);
        let mut fresh = Entry::new(self.api_url, self.user);
        fresh.key = Some(cached_key(key, self.clock.now(), backoff)?);
        fresh.token = Some(token);
        fresh.refetch_backoff = backoff;
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
            server_date: None,
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
        world.cache.check_dir().expect("dir");
        std::fs::write(world.cache.path(), b"\x00garbage").expect("write");
        world.answers(vec![Ok(key("K1", 2_000, Some(1_500)))]);
        let outcome = world.current().expect("fetched");
        assert!(outcome.warnings[0].contains("corrupt cache file"));
        assert!(matches!(world.cache.load(), Loaded::Found(_)));
    }

    #[test]
    fn a_fast_clock_does_not_refetch_every_two_seconds() {
        // This clock is ahead and the API sends no Date: every RefreshAfter looks past, and
        // the API keeps answering the same key until its next rotation.
        let world = World::new("backoff");
        let same = || Ok(key("K1", 9_000, Some(900)));
        world.answers(vec![same(), same(), same(), same(), same()]);
        world.current().expect("first");
        for now in [1_002, 1_004, 1_006] {
            world.at(now).current().expect("served");
        }
        assert_eq!(world.api.keys.get(), 2, "fetched at 1_000 and 1_002 only");
        let refetched = world.at(1_007).current().expect("third");
        assert_eq!(refetched.key.refresh_after, 1_017, "waits 10 s now");
        assert_eq!(world.api.keys.get(), 3);
    }

    #[test]
    fn a_new_key_ends_the_backoff() {
        let world = World::new("newkey");
        world.answers(vec![
            Ok(key("K1", 9_000, Some(900))),
            Ok(key("K1", 9_000, Some(900))),
            Ok(key("K2", 9_000, Some(900))),
        ]);
        world.current().expect("first");
        world.at(1_002).current().expect("same key");
        let new = world.at(1_007).current().expect("new key");
        assert_eq!(new.key.access_key_id, "K2");
        assert_eq!(new.key.refresh_after, 1_009, "back to the 2 s floor");
    }

    #[test]
    fn the_date_header_corrects_a_slow_clock() {
        let world = World::new("skew");
        let mut answer = key("K1", 2_800, Some(2_260));
        answer.server_date = Some(1_600);
        world.answers(vec![Ok(answer)]);
        let outcome = world.current().expect("first");
        assert_eq!(outcome.key.refresh_after, 1_660);
        assert_eq!(outcome.key.expiration, 2_200);
        world.at(1_660).current().expect("bridged by the cache");
        assert_eq!(
            world.api.keys.get(),
            2,
            "refetched at the local refresh time, not 600 s later"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_dir_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let world = World::new("loose");
        std::fs::create_dir_all(&world.dir).expect("dir");
        std::fs::set_permissions(&world.dir, std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        world.answers(vec![Ok(key("K1", 2_000, Some(1_500)))]);
        let error = world.current().expect_err("refused");
        assert!(matches!(
            error,
            ProviderError::CacheDir(DirError::Mode { .. })
        ));
        assert_eq!(world.api.keys.get(), 0, "refused before any fetch");
    }
}
