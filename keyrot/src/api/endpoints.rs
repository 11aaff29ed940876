//! `api-fn`: `POST /generate-token` and `GET /active-key?username=U`, behind the authorizer.
//! api-fn checks the caller's credentials itself ([`CallerCheck`]): anyone allowed to invoke
//! the function can hand it any event, authorizer context included.

use super::authorizer::{CallerRequest, Decision, Route};
use super::caller_check::CallerCheck;
use super::key_times::KeyTimes;
use super::registry_source::ClientSource;
use super::secret_reader::{CurrentVersion, SecretReader};
use super::token::{TokenIssuer, TokenSettings};
use crate::cache::TtlCache;
use crate::iam_key::IamKeySecret;
use crate::key_slots::{self, Slot};
use crate::metrics::{self, Unit};
use crate::signing_key::{PublicKeyStore, SigningKeySecret};
use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::HeaderMap;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{error, info};

/// IAM user names: 1–64 of letters, digits and `+=,.@_-`.
pub fn is_valid_user_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub token: TokenSettings,
    pub managed_secret_prefix: String,
    pub signing_key_secret: String,
    pub rotation_interval: Duration,
    pub signing_key_cache_ttl: Duration,
}

pub struct ApiService<R, C, K> {
    settings: ApiSettings,
    secrets: R,
    caller: CallerCheck<C, K>,
    issuer: TtlCache<Option<TokenIssuer>>,
}

fn response(status: i64, body: serde_json::Value) -> ApiGatewayProxyResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Keys and tokens must never sit in a cache.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut response = ApiGatewayProxyResponse::default();
    response.status_code = status;
    response.headers = headers;
    response.body = Some(Body::Text(body.to_string()));
    response
}

fn error_response(status: i64, code: &str, message: &str) -> ApiGatewayProxyResponse {
    response(status, json!({ "error": code, "message": message }))
}

impl<R: SecretReader, C: ClientSource, K: PublicKeyStore> ApiService<R, C, K> {
    pub fn new(settings: ApiSettings, secrets: R, caller: CallerCheck<C, K>) -> Self {
        let ttl = settings.signing_key_cache_ttl;
        Self {
            settings,
            secrets,
            caller,
            issuer: TtlCache::new(ttl),
        }
    }

    pub async fn handle(
        &self,
        request: ApiGatewayProxyRequest,
        request_id: &str,
    ) -> ApiGatewayProxyResponse {
        let caller = CallerRequest::of_proxy_event(&request);
        // The authorizer's context is a hint, never a grant: it only says whether a key our
        // cached registry does not know yet is worth one reload.
        let known_elsewhere = request
            .request_context
            .authorizer
            .fields
            .get("client_id")
            .and_then(|value| value.as_str())
            .is_some_and(|client_id| !client_id.is_empty());
        let decision = match self
            .caller
            .decide(&caller, request_id, known_elsewhere)
            .await
        {
            Ok(decision) => decision,
            Err(failure) => {
                error!(request_id, decision = "caller_check_unavailable", error = %failure);
                return error_response(500, "internal_error", "internal error");
            }
        };
        let allowed = match decision {
            Decision::Allow(allowed) => allowed,
            Decision::Unauthorized(reason) => {
                // Reached only past API Gateway: a direct invoke, or caches that disagree.
                info!(
                    request_id,
                    decision = "caller_refused",
                    reason,
                    "credentials refused"
                );
                return error_response(401, "unauthorized", "not authorized");
            }
            Decision::Forbidden { client_id, reason } => {
                info!(
                    request_id,
                    client_id = client_id.as_deref().unwrap_or(""),
                    decision = "caller_refused",
                    reason,
                    "caller refused"
                );
                return error_response(403, "forbidden", "not authorized");
            }
        };
        let client_id = allowed.client_id.as_str();
        let route = Route::of(caller.method, caller.resource);
        match route {
            Some(Route::GenerateToken) => self.generate_token(client_id, request_id).await,
            Some(Route::ActiveKey) => {
                self.active_key(&request, client_id, &allowed.users, request_id)
                    .await
            }
            None => error_response(404, "not_found", "no such resource"),
        }
    }

    async fn generate_token(&self, client_id: &str, request_id: &str) -> ApiGatewayProxyResponse {
        let issuer = self
            .issuer
            .get_or_load(|| async {
                let current = self
                    .secrets
                    .current(&self.settings.signing_key_secret)
                    .await?;
                let key = current.and_then(|version| {
                    SigningKeySecret::parse(
                        &version.value,
                        &self.settings.signing_key_secret,
                        "AWSCURRENT",
                    )
                    .ok()
                    .and_then(|secret| secret.key())
                });
                Ok::<_, crate::AwsCallError>(key.map(|key| {
                    TokenIssuer::new(&key.kid, &key.pkcs8_der, self.settings.token.clone())
                }))
            })
            .await;
        let issuer = match issuer {
            Ok(issuer) => issuer,
            Err(failure) => {
                error!(request_id, client_id, decision = "token_failed", error = %failure);
                return error_response(500, "internal_error", "internal error");
            }
        };
        let Some(issuer) = issuer.as_ref() else {
            error!(
                request_id,
                client_id,
                decision = "token_failed",
                error = "no signing key yet: rotate the signing key secret once"
            );
            return error_response(503, "unavailable", "token issuing is not ready yet");
        };
        match issuer.issue(client_id, SystemTime::now()) {
            Ok(issued) => {
                info!(request_id, client_id, decision = "token_issued", kid = issuer.kid(), token_id = %issued.claims.jti);
                metrics::emit(
                    &[("Function", "api-fn")],
                    &[&["Function"]],
                    &[("TokensIssued", 1.0, Unit::Count)],
                );
                response(
                    200,
                    json!({
                        "token": issued.token,
                        "token_type": "Bearer",
                        "expires_in": issued.expires_in,
                    }),
                )
            }
            Err(failure) => {
                error!(request_id, client_id, decision = "token_failed", error = %failure);
                error_response(500, "internal_error", "internal error")
            }
        }
    }

    async fn active_key(
        &self,
        request: &ApiGatewayProxyRequest,
        client_id: &str,
        allowed: &[String],
        request_id: &str,
    ) -> ApiGatewayProxyResponse {
        let values = request
            .multi_value_query_string_parameters
            .all("username")
            .or_else(|| request.query_string_parameters.all("username"))
            .unwrap_or_default();
        let user = match values.as_slice() {
            [] => {
                return error_response(
                    400,
                    "invalid_request",
                    "query parameter username is required",
                )
            }
            [one] if is_valid_user_name(one) => *one,
            [_] => {
                return error_response(
                    400,
                    "invalid_request",
                    "username is not a valid IAM user name",
                )
            }
            _ => return error_response(400, "invalid_request", "username must be given once"),
        };
        // The users of the client the credentials belong to, from the registry.
        if !allowed.iter().any(|allowed_user| allowed_user == user) {
            info!(request_id, client_id, user, decision = "user_not_allowed");
            // Same answer whether or not the user exists: no enumeration.
            return error_response(403, "forbidden", "this client may not read that user's key");
        }
        let prefix = self.settings.managed_secret_prefix.as_str();
        let names = Slot::BOTH.map(|slot| key_slots::secret_name(prefix, user, slot));
        // Taken before the reads: each key was AWSCURRENT at some moment after this, so the
        // rotator's record of when another key took over is never earlier.
        let fetched_at = SystemTime::now();
        // Both slots, in parallel; the newest key of the two is the one handed out. Either
        // read failing fails the request: the older key alone must not be handed out once
        // the newer one has taken over.
        let (a, b) = tokio::join!(
            self.secrets.current(&names[0]),
            self.secrets.current(&names[1])
        );
        let mut newest: Option<(usize, CurrentVersion, IamKeySecret, SystemTime)> = None;
        let mut retirements: [Option<SystemTime>; 2] = [None, None];
        for (index, read) in [a, b].into_iter().enumerate() {
            let current = match read {
                Ok(Some(current)) => current,
                Ok(None) => continue,
                Err(failure) => {
                    error!(request_id, client_id, user, decision = "read_failed", secret = %names[index], error = %failure);
                    return error_response(500, "internal_error", "internal error");
                }
            };
            let key = IamKeySecret::parse(&current.value, &names[index], "AWSCURRENT")
                .ok()
                .filter(|secret| secret.user_name == user && secret.key().is_some());
            let Some(key) = key else { continue };
            retirements[index] = key.expires();
            let created = key.created().or(current.created).unwrap_or(UNIX_EPOCH);
            if newest
                .as_ref()
                .is_none_or(|(_, _, _, newest)| created > *newest)
            {
                newest = Some((index, current, key, created));
            }
        }
        let Some((index, current, key, _)) = newest else {
            info!(request_id, client_id, user, decision = "no_managed_key");
            return error_response(404, "not_found", "no managed key for this user yet");
        };
        let interval = self.settings.rotation_interval;
        let other_slot = key_slots::Schedule::of(prefix, &names[1 - index], interval)
            .map(|schedule| (schedule, retirements[1 - index]));
        let rotated = current.created.unwrap_or(fetched_at);
        let lifetime = KeyTimes::of(&key, rotated, fetched_at, interval, other_slot);
        info!(request_id, client_id, user, decision = "key_read", slot = Slot::BOTH[index].label(), version = %current.version_id);
        metrics::emit(
            &[("Function", "api-fn")],
            &[&["Function"]],
            &[("ActiveKeyReads", 1.0, Unit::Count)],
        );
        response(
            200,
            json!({
                "UserName": key.user_name,
                "AccessKeyId": key.access_key_id,
                "SecretAccessKey": key.secret_access_key,
                "Version": current.version_id,
                "RotatedAt": crate::time::rfc3339(rotated),
                "Expiration": crate::time::rfc3339(lifetime.expiration),
                "RefreshAfter": crate::time::rfc3339(lifetime.refresh_after),
            }),
        )
    }
}
