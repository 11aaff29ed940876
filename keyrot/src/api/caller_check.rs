//! Who is calling: the client registry and the token keys (cached briefly) applied to one
//! request's credentials. The authorizer and api-fn both run it, so that a request invoking
//! api-fn directly, past API Gateway and its authorizer, gets in with valid credentials only:
//! nothing a caller can write into an event (the authorizer context) grants anything.

use super::authorizer::{decide, AuthorizerSettings, CallerRequest, Decision, UNKNOWN_API_KEY};
use super::clients::ClientRegistry;
use super::registry_source::ClientSource;
use super::token::{TokenRejection, TokenVerifier};
use crate::cache::TtlCache;
use crate::signing_key::{KeySetError, PublicKeyStore};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::warn;

/// Shortest time between two reloads forced by a request that the cached registry or key set
/// cannot place. api-fn may sign with a new key before this instance's cached key set has it
/// (the key is published before it signs anything), and a client added or re-keyed a moment
/// ago may be known to the authorizer's cache and not yet to api-fn's; one reload then lets
/// the request in. The limit keeps callers from turning made-up keys into a stream of reads.
pub const FORCED_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(5);

pub struct CallerCheck<C, K> {
    settings: AuthorizerSettings,
    clients: C,
    public_keys: K,
    registry: TtlCache<ClientRegistry>,
    verifier: TtlCache<TokenVerifier>,
    last_kid_reload: Mutex<Option<Instant>>,
    last_registry_reload: Mutex<Option<Instant>>,
}

/// Whether a forced reload may happen now (and if so, records it).
fn may_reload(last: &Mutex<Option<Instant>>) -> bool {
    let Ok(mut last) = last.lock() else {
        return false;
    };
    if last.is_some_and(|at| at.elapsed() < FORCED_RELOAD_MIN_INTERVAL) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

/// A forced reload's result, or what was cached: a failed reload keeps the refusal it was
/// meant to lift, never turning it into an error.
fn fresh_or<T>(
    fresh: Result<Arc<T>, String>,
    cached: Arc<T>,
    what: &str,
    request_id: &str,
) -> Arc<T> {
    fresh.unwrap_or_else(|message| {
        warn!(request_id, error = %message, "{what} reload failed; the cached one stays");
        cached
    })
}

impl<C: ClientSource, K: PublicKeyStore> CallerCheck<C, K> {
    pub fn new(
        settings: AuthorizerSettings,
        clients: C,
        public_keys: K,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            settings,
            clients,
            public_keys,
            registry: TtlCache::new(cache_ttl),
            verifier: TtlCache::new(cache_ttl),
            last_kid_reload: Mutex::new(None),
            last_registry_reload: Mutex::new(None),
        }
    }

    async fn load_registry(&self) -> Result<ClientRegistry, String> {
        self.clients
            .load()
            .await
            .map(ClientRegistry::new)
            .map_err(|error| error.to_string())
    }

    async fn load_verifier(&self) -> Result<TokenVerifier, String> {
        let text = self.public_keys.read().await.map_err(|e| e.to_string())?;
        let set = crate::signing_key::parse_key_set_text(text.as_deref())
            .map_err(|e: KeySetError| e.to_string())?;
        Ok(TokenVerifier::new(
            &set,
            &self.settings.issuer,
            &self.settings.audience,
        ))
    }

    /// The decision for `request`. `Err` (fail closed: nobody gets in) when the registry or
    /// the key set cannot be loaded; a failed forced reload keeps the refusal instead.
    ///
    /// `known_elsewhere`: another check (the authorizer in front of api-fn) says it knew the
    /// API key, so an unknown key reloads the registry once (rate-limited) before refusing: a
    /// client added or re-keyed a moment ago is then not refused by one cache and accepted by
    /// the other. It can only cost a read, never let anyone in. The authorizer passes `false`:
    /// a caller with made-up keys must not turn them into registry reloads.
    pub async fn decide(
        &self,
        request: &CallerRequest<'_>,
        request_id: &str,
        known_elsewhere: bool,
    ) -> Result<Decision, String> {
        // Both loads at once: on a cold start they are the first invocation's only AWS calls.
        let (registry, verifier) = tokio::join!(
            self.registry.get_or_load(|| self.load_registry()),
            self.verifier.get_or_load(|| self.load_verifier()),
        );
        let mut registry = registry?;
        let mut verifier = verifier?;
        let decide_now = |registry: &ClientRegistry, verifier: &TokenVerifier| {
            decide(
                request,
                registry,
                verifier,
                &self.settings,
                SystemTime::now(),
            )
        };
        let mut decision = decide_now(&registry, &verifier);
        if known_elsewhere
            && decision == Decision::Unauthorized(UNKNOWN_API_KEY)
            && may_reload(&self.last_registry_reload)
        {
            let fresh = self.registry.reload(|| self.load_registry()).await;
            registry = fresh_or(fresh, registry, "registry", request_id);
            decision = decide_now(&registry, &verifier);
        }
        if decision == Decision::Unauthorized(TokenRejection::UnknownKey.as_str())
            && may_reload(&self.last_kid_reload)
        {
            let fresh = self.verifier.reload(|| self.load_verifier()).await;
            verifier = fresh_or(fresh, verifier, "key set", request_id);
            decision = decide_now(&registry, &verifier);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::clients::Client;
    use crate::api::source_ip::CidrList;
    use crate::{AwsCallError, Sensitive};
    use http::HeaderMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default, Clone)]
    struct Registry {
        clients: Arc<Mutex<Vec<Client>>>,
        loads: Arc<AtomicUsize>,
    }

    impl ClientSource for Registry {
        async fn load(&self) -> Result<Vec<Client>, AwsCallError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            Ok(self.clients.lock().map(|c| c.clone()).unwrap_or_default())
        }
    }

    struct NoKeys;

    impl PublicKeyStore for NoKeys {
        async fn read(&self) -> Result<Option<String>, AwsCallError> {
            Ok(None)
        }
        async fn write(&self, _jwks: &str) -> Result<(), AwsCallError> {
            Ok(())
        }
    }

    fn client(id: &str, api_key: &str) -> Client {
        Client {
            id: id.to_owned(),
            api_key: Sensitive::new(api_key),
            previous_api_key: None,
            users: vec!["alice".to_owned()],
            cidrs: CidrList::default(),
            usage_key: None,
        }
    }

    fn check(registry: &Registry) -> CallerCheck<Registry, NoKeys> {
        let settings = AuthorizerSettings {
            allowed_cidrs: CidrList::parse_comma_separated("127.0.0.0/8").expect("cidrs"),
            issuer: "iss".into(),
            audience: "aud".into(),
        };
        // Cached for an hour, as a warm instance would hold it.
        CallerCheck::new(
            settings,
            registry.clone(),
            NoKeys,
            Duration::from_secs(3600),
        )
    }

    fn token_request(headers: &HeaderMap) -> CallerRequest<'_> {
        CallerRequest {
            source_ip: Some("127.0.0.1"),
            headers,
            multi_value_headers: headers,
            method: "POST",
            resource: "/generate-token",
        }
    }

    #[tokio::test]
    async fn a_key_added_after_the_cache_loaded_reloads_once_only_when_known_elsewhere() {
        let registry = Registry::default();
        let check = check(&registry);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", "new-key".parse().expect("header"));
        let request = token_request(&headers);
        let first = check.decide(&request, "r1", true).await.expect("decision");
        assert_eq!(first, Decision::Unauthorized(UNKNOWN_API_KEY));
        assert_eq!(
            registry.loads.load(Ordering::SeqCst),
            2,
            "load, then one reload"
        );

        // The client is added now; the hour-long cache does not have it.
        if let Ok(mut clients) = registry.clients.lock() {
            clients.push(client("new", "new-key"));
        }
        // Without the hint (the authorizer): refused from the cache, no read.
        let refused = check.decide(&request, "r2", false).await.expect("decision");
        assert_eq!(refused, Decision::Unauthorized(UNKNOWN_API_KEY));
        assert_eq!(registry.loads.load(Ordering::SeqCst), 2);
        // With it, but within the rate limit of the last forced reload: still refused.
        let limited = check.decide(&request, "r3", true).await.expect("decision");
        assert_eq!(limited, Decision::Unauthorized(UNKNOWN_API_KEY));
        assert_eq!(registry.loads.load(Ordering::SeqCst), 2);

        // A fresh instance that loaded before the client was added lets it in after one read.
        let registry = Registry::default();
        let check = super::tests::check(&registry);
        let mut other = HeaderMap::new();
        other.insert("x-api-key", "other".parse().expect("header"));
        let _ = check.decide(&token_request(&other), "r4", false).await;
        if let Ok(mut clients) = registry.clients.lock() {
            clients.push(client("new", "new-key"));
        }
        let allowed = check.decide(&request, "r5", true).await.expect("decision");
        assert!(
            matches!(&allowed, Decision::Allow(a) if a.client_id == "new"),
            "{allowed:?}"
        );
        assert_eq!(registry.loads.load(Ordering::SeqCst), 2);
    }
}
