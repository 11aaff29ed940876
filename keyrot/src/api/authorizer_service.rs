//! The authorizer function: registry and keys from AWS (cached briefly), one decision per
//! request, logged without any credential.

use super::authorizer::{decide, policy_response, AuthorizerSettings, Decision};
use super::clients::ClientRegistry;
use super::registry_source::ClientSource;
use super::token::{TokenRejection, TokenVerifier};
use crate::cache::TtlCache;
use crate::metrics::{self, Unit};
use crate::signing_key::{KeySetError, PublicKeyStore};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Shortest time between two key-set reloads forced by a token with an unknown `kid`. api-fn
/// may sign with a new key before this instance's cached key set has it (the key is published
/// before it signs anything); one reload then lets the token in. The limit keeps callers with
/// a valid API key from turning made-up `kid`s into a stream of SSM reads.
pub const KID_RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AuthorizerError {
    /// API Gateway turns exactly this message into a 401.
    #[error("Unauthorized")]
    Unauthorized,
    /// Fail closed: without the registry or the keys nobody is let in (API Gateway: 500).
    #[error("authorizer unavailable: {0}")]
    Unavailable(String),
}

impl From<AuthorizerError> for Diagnostic {
    fn from(error: AuthorizerError) -> Self {
        match error {
            AuthorizerError::Unauthorized => Diagnostic {
                error_type: "Unauthorized".into(),
                error_message: "Unauthorized".into(),
            },
            AuthorizerError::Unavailable(message) => Diagnostic {
                error_type: "keyrot.authorizer.Unavailable".into(),
                error_message: message,
            },
        }
    }
}

pub struct AuthorizerService<C, K> {
    settings: AuthorizerSettings,
    clients: C,
    public_keys: K,
    registry: TtlCache<ClientRegistry>,
    verifier: TtlCache<TokenVerifier>,
    last_kid_reload: std::sync::Mutex<Option<Instant>>,
}

impl<C: ClientSource, K: PublicKeyStore> AuthorizerService<C, K> {
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
            last_kid_reload: std::sync::Mutex::new(None),
        }
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

    /// Whether an unknown `kid` may force a key-set reload now (and if so, records it).
    fn may_reload_for_unknown_kid(&self) -> bool {
        let Ok(mut last) = self.last_kid_reload.lock() else {
            return false;
        };
        if last.is_some_and(|at| at.elapsed() < KID_RELOAD_MIN_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
        let request_id = event.context.request_id;
        let request = event.payload;
        // Both loads at once: on a cold start they are the first invocation's only AWS calls.
        let (registry, verifier) = tokio::join!(
            self.registry
                .get_or_load(|| async { self.clients.load().await.map(ClientRegistry::new) }),
            self.verifier.get_or_load(|| self.load_verifier()),
        );
        let registry = registry.map_err(|e| self.unavailable(&request_id, e.to_string()))?;
        let verifier = verifier.map_err(|e| self.unavailable(&request_id, e))?;

        let mut decision = decide(
            &request,
            &registry,
            &verifier,
            &self.settings,
            SystemTime::now(),
        );
        // A key newer than the cached set: read the set again (once, rate-limited), then decide
        // again. A failed reload keeps the refusal; it never turns into a 500.
        if decision == Decision::Unauthorized(TokenRejection::UnknownKey.as_str())
            && self.may_reload_for_unknown_kid()
        {
            match self.verifier.reload(|| self.load_verifier()).await {
                Ok(fresh) => {
                    decision = decide(
                        &request,
                        &registry,
                        &fresh,
                        &self.settings,
                        SystemTime::now(),
                    );
                }
                Err(message) => {
                    warn!(request_id = %request_id, error = %message, "key set reload for an unknown kid failed");
                }
            }
        }
        let client_id = match &decision {
            Decision::Allow(allowed) => allowed.client_id.as_str(),
            Decision::Forbidden { client_id, .. } => client_id.as_deref().unwrap_or(""),
            Decision::Unauthorized(_) => "",
        };
        let decision_name = match decision {
            Decision::Allow(_) => "allow",
            Decision::Forbidden { .. } => "deny",
            Decision::Unauthorized(_) => "unauthorized",
        };
        info!(
            request_id = %request_id,
            decision = decision_name,
            reason = decision.reason(),
            client_id,
            method = request.http_method.as_ref().map(|m| m.as_str()).unwrap_or(""),
            resource = request.resource.as_deref().unwrap_or(""),
            source_ip = request.request_context.identity.as_ref().and_then(|i| i.source_ip.as_deref()).unwrap_or(""),
            "authorizer decision"
        );
        metrics::emit(
            &[("Decision", decision_name), ("Reason", decision.reason())],
            &[&["Reason"], &["Decision"]],
            &[("AuthorizerDecision", 1.0, Unit::Count)],
        );
        let method_arn = request.method_arn.as_deref().unwrap_or_default();
        policy_response(&decision, method_arn).ok_or(AuthorizerError::Unauthorized)
    }

    fn unavailable(&self, request_id: &str, message: String) -> AuthorizerError {
        error!(request_id = %request_id, decision = "unavailable", error = %message, "authorizer could not load its configuration");
        AuthorizerError::Unavailable(message)
    }
}
