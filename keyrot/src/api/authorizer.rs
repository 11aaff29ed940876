//! The authorizer's decision for one request. Pure logic over the request, the registry and
//! the keys. The order is chosen so that a caller learns nothing it may not know:
//!
//! 1. the source IP against the global allowlist (403, whatever the credentials: the API's
//!    resource policy refuses the same callers before the authorizer runs);
//! 2. the API key (401 when unknown);
//! 3. the source IP against the client's own CIDRs, refused exactly like an unknown key, so
//!    that a caller from outside them cannot tell a valid key from an invalid one;
//! 4. the route, then (except for token issue) the JWT.

use super::clients::{Client, ClientRegistry};
use super::source_ip::{is_allowed, parse_source_ip, CidrList};
use super::token::TokenVerifier;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerResponse, ApiGatewayProxyRequest,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use http::HeaderMap;
use std::time::SystemTime;

/// Longest API key accepted; generated keys are 43 characters.
pub const MAX_API_KEY_BYTES: usize = 128;
pub const API_KEY_HEADER: &str = "x-api-key";
/// The refusal reason for an API key the registry does not hold (yet).
pub const UNKNOWN_API_KEY: &str = "unknown_api_key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    GenerateToken,
    ActiveKey,
}

impl Route {
    pub fn of(method: &str, resource: &str) -> Option<Self> {
        match (method, resource) {
            ("POST", "/generate-token") => Some(Self::GenerateToken),
            ("GET", "/active-key") => Some(Self::ActiveKey),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthorizerSettings {
    pub allowed_cidrs: CidrList,
    pub issuer: String,
    pub audience: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub client_id: String,
    pub users: Vec<String>,
    pub usage_key: Option<String>,
    pub token_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Allowed),
    /// Missing or invalid credentials: 401.
    Unauthorized(&'static str),
    /// Not from here (no client known yet), or a valid client on an unknown route: 403.
    Forbidden {
        client_id: Option<String>,
        reason: &'static str,
    },
}

impl Decision {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allowed",
            Self::Unauthorized(reason) => reason,
            Self::Forbidden { reason, .. } => reason,
        }
    }
}

/// What a caller's credentials are checked against: the parts of a request API Gateway
/// fills in, the same whether they reach the authorizer or (as a proxy event) api-fn.
#[derive(Debug, Clone, Copy)]
pub struct CallerRequest<'r> {
    /// API Gateway's view of the peer (`requestContext.identity.sourceIp`).
    pub source_ip: Option<&'r str>,
    pub headers: &'r HeaderMap,
    pub multi_value_headers: &'r HeaderMap,
    pub method: &'r str,
    pub resource: &'r str,
}

impl<'r> CallerRequest<'r> {
    pub fn of_authorizer_event(request: &'r ApiGatewayCustomAuthorizerRequestTypeRequest) -> Self {
        Self {
            source_ip: request
                .request_context
                .identity
                .as_ref()
                .and_then(|identity| identity.source_ip.as_deref()),
            headers: &request.headers,
            multi_value_headers: &request.multi_value_headers,
            method: request.http_method.as_ref().map_or("", |m| m.as_str()),
            resource: request
                .resource
                .as_deref()
                .or(request.request_context.resource_path.as_deref())
                .unwrap_or_default(),
        }
    }

    pub fn of_proxy_event(request: &'r ApiGatewayProxyRequest) -> Self {
        Self {
            source_ip: request.request_context.identity.source_ip.as_deref(),
            headers: &request.headers,
            multi_value_headers: &request.multi_value_headers,
            method: request.http_method.as_str(),
            resource: request
                .resource
                .as_deref()
                .or(request.request_context.resource_path.as_deref())
                .unwrap_or_default(),
        }
    }

    /// The single value of a header; `Err` when it appears more than once. API Gateway puts
    /// the last value in `headers` and all of them in `multiValueHeaders`, so both are
    /// consulted.
    fn single_header(&self, name: &str) -> Result<Option<&'r str>, ()> {
        let repeated = |headers: &HeaderMap| headers.get_all(name).iter().count() > 1;
        if repeated(self.headers) || repeated(self.multi_value_headers) {
            return Err(());
        }
        match self
            .headers
            .get(name)
            .or_else(|| self.multi_value_headers.get(name))
        {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| ()),
        }
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub fn decide(
    request: &CallerRequest<'_>,
    registry: &ClientRegistry,
    verifier: &TokenVerifier,
    settings: &AuthorizerSettings,
    now: SystemTime,
) -> Decision {
    // Only API Gateway's view of the peer counts: never X-Forwarded-For or another header.
    let source_ip = request.source_ip.and_then(parse_source_ip);
    let Some(source_ip) = source_ip.filter(|ip| settings.allowed_cidrs.contains(*ip)) else {
        return Decision::Forbidden {
            client_id: None,
            reason: "ip_not_allowed",
        };
    };
    let api_key = match request.single_header(API_KEY_HEADER) {
        Ok(Some(key)) if !key.is_empty() && key.len() <= MAX_API_KEY_BYTES => key,
        Ok(None) => return Decision::Unauthorized("missing_api_key"),
        _ => return Decision::Unauthorized("malformed_api_key"),
    };
    let Some(client) = registry.find_by_api_key(api_key, now) else {
        return Decision::Unauthorized(UNKNOWN_API_KEY);
    };
    // The same answer as an unknown key (the reason is for logs and metrics only).
    if !is_allowed(&settings.allowed_cidrs, &client.cidrs, source_ip) {
        return Decision::Unauthorized("ip_not_allowed_for_client");
    }
    let forbidden = |reason| Decision::Forbidden {
        client_id: Some(client.id.clone()),
        reason,
    };
    let Some(route) = Route::of(request.method, request.resource) else {
        return forbidden("unknown_route");
    };

    let mut token_id = None;
    if route == Route::ActiveKey {
        let token = match request.single_header("authorization") {
            Ok(Some(value)) => match bearer_token(value) {
                Some(token) if !token.is_empty() => token,
                _ => return Decision::Unauthorized("malformed_authorization"),
            },
            Ok(None) => return Decision::Unauthorized("missing_token"),
            Err(()) => return Decision::Unauthorized("malformed_authorization"),
        };
        let claims = match verifier.verify(token, now) {
            Ok(claims) => claims,
            Err(rejection) => return Decision::Unauthorized(rejection.as_str()),
        };
        if claims.sub != client.id {
            // A token stolen from another client is useless with this client's key.
            return Decision::Unauthorized("token_of_another_client");
        }
        token_id = Some(claims.jti);
    }
    Decision::Allow(allowed(client, token_id))
}

fn allowed(client: &Client, token_id: Option<String>) -> Allowed {
    Allowed {
        client_id: client.id.clone(),
        users: client.users.clone(),
        usage_key: client.usage_key.clone(),
        token_id,
    }
}

/// The users a client may read, as the authorizer context carries them: context values must
/// be strings, and IAM user names may contain commas, so the list travels as a JSON array
/// (`["ci,alice"]` is one user, never two).
pub fn allowed_users_context(users: &[String]) -> String {
    serde_json::Value::from(users.to_vec()).to_string()
}

/// The users of an `allowed_users` context value; `None` (nobody) for anything but a JSON
/// array of strings.
pub fn parse_allowed_users_context(value: &str) -> Option<Vec<String>> {
    serde_json::from_str::<Vec<String>>(value).ok()
}

/// The policy API Gateway applies: exactly the invoked method, never a wildcard, so no
/// cached or reused decision can cover another method.
pub fn policy_response(
    decision: &Decision,
    method_arn: &str,
) -> Option<ApiGatewayCustomAuthorizerResponse> {
    let (effect, principal, context, usage_key) = match decision {
        Decision::Unauthorized(_) => return None,
        Decision::Forbidden { client_id, .. } => (
            IamPolicyEffect::Deny,
            client_id.clone().unwrap_or_else(|| "anonymous".to_owned()),
            serde_json::Value::Null,
            None,
        ),
        Decision::Allow(allowed) => (
            IamPolicyEffect::Allow,
            allowed.client_id.clone(),
            serde_json::json!({
                "client_id": allowed.client_id,
                "allowed_users": allowed_users_context(&allowed.users),
                "token_id": allowed.token_id.clone().unwrap_or_default(),
            }),
            allowed.usage_key.clone(),
        ),
    };
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".to_owned()];
    statement.effect = effect;
    statement.resource = vec![method_arn.to_owned()];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".to_owned());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal);
    response.policy_document = policy;
    response.context = context;
    response.usage_identifier_key = usage_key;
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_covers_exactly_the_invoked_method_and_carries_flat_context() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:api/v1/GET/active-key";
        let decision = Decision::Allow(Allowed {
            client_id: "ci".into(),
            users: vec!["alice".into(), "bob".into()],
            usage_key: Some("usage-ci-0123456789".into()),
            token_id: Some("jti-1".into()),
        });
        let response = policy_response(&decision, arn).expect("policy");
        let statement = &response.policy_document.statement[0];
        assert_eq!(statement.effect, IamPolicyEffect::Allow);
        assert_eq!(statement.resource, vec![arn.to_owned()]);
        assert_eq!(statement.action, vec!["execute-api:Invoke".to_owned()]);
        assert_eq!(response.context["allowed_users"], r#"["alice","bob"]"#);
        assert!(response
            .context
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.is_string()));
        assert_eq!(
            response.usage_identifier_key.as_deref(),
            Some("usage-ci-0123456789")
        );

        let deny = policy_response(
            &Decision::Forbidden {
                client_id: Some("ci".into()),
                reason: "unknown_route",
            },
            arn,
        )
        .expect("policy");
        assert_eq!(
            deny.policy_document.statement[0].effect,
            IamPolicyEffect::Deny
        );
        assert!(deny.usage_identifier_key.is_none());
        assert!(policy_response(&Decision::Unauthorized("missing_api_key"), arn).is_none());
    }

    #[test]
    fn allowed_users_travel_as_a_json_array_so_commas_stay_inside_one_name() {
        // Issue 12, item 9: IAM user names may contain commas.
        let users = vec!["ci,alice".to_owned(), "bob".to_owned()];
        let value = allowed_users_context(&users);
        assert_eq!(parse_allowed_users_context(&value), Some(users));
        let parsed = parse_allowed_users_context(&allowed_users_context(&["ci,alice".into()]));
        assert_eq!(parsed, Some(vec!["ci,alice".to_owned()]));
        for garbage in ["alice,bob", "", "{}", "[1]", r#"["a","#] {
            assert_eq!(parse_allowed_users_context(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn routes_are_exact() {
        assert_eq!(
            Route::of("POST", "/generate-token"),
            Some(Route::GenerateToken)
        );
        assert_eq!(Route::of("GET", "/active-key"), Some(Route::ActiveKey));
        assert_eq!(Route::of("GET", "/generate-token"), None);
        assert_eq!(Route::of("GET", "/active-key/"), None);
    }
}
