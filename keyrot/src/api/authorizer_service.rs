//! The authorizer function: registry and keys from AWS (cached briefly), one decision per
//! request, logged without any credential.

use super::authorizer::{policy_response, AuthorizerSettings, CallerRequest, Decision};
use super::caller_check::CallerCheck;
use super::registry_source::ClientSource;
use crate::metrics::{self, Unit};
use crate::signing_key::PublicKeyStore;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use lambda_runtime::{Diagnostic, LambdaEvent};
use std::time::Duration;
use tracing::{error, info};

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
    caller: CallerCheck<C, K>,
}

impl<C: ClientSource, K: PublicKeyStore> AuthorizerService<C, K> {
    pub fn new(
        settings: AuthorizerSettings,
        clients: C,
        public_keys: K,
        cache_ttl: Duration,
    ) -> Self {
        Self {
            caller: CallerCheck::new(settings, clients, public_keys, cache_ttl),
        }
    }

    pub async fn handle(
        &self,
        event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>,
    ) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
        let request_id = event.context.request_id;
        let request = event.payload;
        let decision = self
            .caller
            .decide(
                &CallerRequest::of_authorizer_event(&request),
                &request_id,
                false,
            )
            .await
            .map_err(|message| self.unavailable(&request_id, message))?;
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
