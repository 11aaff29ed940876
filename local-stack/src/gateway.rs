//! A local stand-in for the API Gateway REST API keyrot is deployed behind, doing what keyrot
//! depends on: the resource policy's source-IP check, the REQUEST authorizer (source IP is the
//! TCP peer, never a header) with its Allow/Deny/Unauthorized, per-client throttling from the
//! usage plan (whose keys `usage_plans.rs` checks as AWS does), the proxy integration to
//! api-fn, and JSON gateway responses.

use crate::invoke::{Invocation, Invoker};
use crate::throttle::Throttle;
use crate::usage_plans::UsagePlans;
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerRequestTypeRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequestContext,
    ApiGatewayCustomAuthorizerRequestTypeRequestIdentity, ApiGatewayCustomAuthorizerResponse,
    ApiGatewayProxyRequest, ApiGatewayProxyResponse,
};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::iam::IamPolicyEffect;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use keyrot::api::source_ip::{parse_source_ip, CidrList};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

pub const STAGE: &str = "v1";
const API_ID: &str = "keyrotlocal";
const ROUTES: &[(&str, &str)] = &[("POST", "/generate-token"), ("GET", "/active-key")];
const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct Gateway {
    invoker: Invoker,
    allowed: CidrList,
    throttle: Throttle,
    usage_plans: UsagePlans,
    requests: AtomicU64,
    /// One line per request (`unix-time method path status`; no header, query or body, so
    /// nothing secret): what tests count API calls with.
    access_log: Option<Mutex<std::fs::File>>,
}

fn gateway_response(status: StatusCode, error: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "error": error, "message": message }).to_string();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

impl Gateway {
    pub fn new(
        invoker: Invoker,
        allowed: CidrList,
        throttle: Throttle,
        usage_plans: UsagePlans,
    ) -> Self {
        Self {
            invoker,
            allowed,
            throttle,
            usage_plans,
            requests: AtomicU64::new(0),
            access_log: None,
        }
    }

    pub fn with_access_log(mut self, file: std::fs::File) -> Self {
        self.access_log = Some(Mutex::new(file));
        self
    }

    fn log_access(&self, method: &Method, path: &str, status: StatusCode) {
        if let Some(log) = &self.access_log {
            if let Ok(mut file) = log.lock() {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let _ = writeln!(
                    file,
                    "{}.{:03} {method} {path} {}",
                    now.as_secs(),
                    now.subsec_millis(),
                    status.as_u16()
                );
            }
        }
    }

    /// Serves until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let gateway = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move {
                        let (method, path) =
                            (request.method().clone(), request.uri().path().to_owned());
                        let response = gateway.handle(request, peer).await;
                        gateway.log_access(&method, &path, response.status());
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let request_id = format!("local-{}", self.requests.fetch_add(1, Ordering::Relaxed));
        let source_ip = peer.ip().to_string();
        // Resource policy: only the allowed CIDRs reach the API at all.
        match parse_source_ip(&source_ip) {
            Some(ip) if self.allowed.contains(ip) => {}
            _ => {
                return gateway_response(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "source IP not allowed by the resource policy",
                )
            }
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let resource = path.strip_prefix(&format!("/{STAGE}")).unwrap_or("");
        let Some((_, resource)) = ROUTES
            .iter()
            .find(|(m, r)| *m == method.as_str() && *r == resource)
        else {
            return gateway_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Missing Authentication Token",
            );
        };
        let query: Vec<(String, String)> = request
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let headers = request.headers().clone();
        let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return gateway_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "request body too large",
                )
            }
        };
        let call = IncomingCall {
            method_arn: format!(
                "arn:aws:execute-api:us-east-1:123456789012:{API_ID}/{STAGE}/{method}{resource}"
            ),
            method,
            resource,
            path,
            headers,
            query,
            source_ip,
            request_id,
        };
        let (method_arn, request_id) = (&call.method_arn, &call.request_id);

        let authorizer_event = authorizer_event(&call);
        let decision = match self
            .invoker
            .invoke("authorizer-fn", &authorizer_event)
            .await
        {
            Ok(Invocation::Returned(value)) => {
                match serde_json::from_value::<ApiGatewayCustomAuthorizerResponse>(value) {
                    Ok(decision) => decision,
                    Err(_) => {
                        return gateway_response(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            "authorizer_error",
                            "authorizer returned an invalid response",
                        )
                    }
                }
            }
            Ok(Invocation::Failed { message, .. }) if message == "Unauthorized" => {
                return gateway_response(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized")
            }
            Ok(Invocation::Failed { error_type, .. }) => {
                eprintln!(
                    "{request_id}: authorizer-fn failed with {error_type} (see functions.log)"
                );
                return gateway_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "authorizer_error",
                    "authorizer failed",
                );
            }
            Err(failure) => {
                eprintln!("{request_id}: {failure}");
                return gateway_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "authorizer_error",
                    "authorizer failed",
                );
            }
        };
        let allowed = decision.policy_document.statement.iter().any(|s| {
            s.effect == IamPolicyEffect::Allow && s.resource.iter().any(|r| r == method_arn)
        }) && !decision.policy_document.statement.iter().any(|s| {
            s.effect == IamPolicyEffect::Deny
                && s.resource.iter().any(|r| r == method_arn || r == "*")
        });
        if !allowed {
            return gateway_response(
                StatusCode::FORBIDDEN,
                "forbidden",
                "User is not authorized to access this resource",
            );
        }
        // Usage plan: the authorizer names the client's API key (ApiKeySourceType AUTHORIZER),
        // which must be an enabled key of the stage's plan. The template maps the
        // INVALID_API_KEY response (AWS: 403, message "Forbidden") to this JSON.
        let usage_key = decision.usage_identifier_key.as_deref();
        match self.usage_plans.admits(usage_key).await {
            Ok(true) => {}
            Ok(false) => {
                return gateway_response(StatusCode::FORBIDDEN, "forbidden", "Forbidden");
            }
            Err(failure) => {
                eprintln!("{request_id}: {failure}");
                return gateway_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal server error",
                );
            }
        }
        let usage_key = usage_key.unwrap_or_default();
        if !self.throttle.admit(usage_key) {
            return gateway_response(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "Too Many Requests",
            );
        }

        let proxy_event = proxy_event(&call, &decision, body);
        match self.invoker.invoke("api-fn", &proxy_event).await {
            Ok(Invocation::Returned(value)) => {
                match serde_json::from_value::<ApiGatewayProxyResponse>(value) {
                    Ok(response) => to_http(response),
                    Err(_) => gateway_response(
                        StatusCode::BAD_GATEWAY,
                        "internal_error",
                        "Internal server error",
                    ),
                }
            }
            _ => gateway_response(
                StatusCode::BAD_GATEWAY,
                "internal_error",
                "Internal server error",
            ),
        }
    }
}

/// What the gateway learned from one HTTP request, as its events need it.
struct IncomingCall {
    method: Method,
    resource: &'static str,
    path: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    source_ip: String,
    request_id: String,
    method_arn: String,
}

/// The REQUEST authorizer event API Gateway would send for `call`.
fn authorizer_event(call: &IncomingCall) -> Value {
    let mut identity = ApiGatewayCustomAuthorizerRequestTypeRequestIdentity::default();
    identity.source_ip = Some(call.source_ip.clone());
    let mut context = ApiGatewayCustomAuthorizerRequestTypeRequestContext::default();
    context.path = Some(call.path.clone());
    context.account_id = Some("123456789012".into());
    context.stage = Some(STAGE.into());
    context.request_id = Some(call.request_id.clone());
    context.identity = Some(identity);
    context.resource_path = Some(call.resource.to_owned());
    context.http_method = Some(call.method.clone());
    context.apiid = Some(API_ID.into());
    let mut event = ApiGatewayCustomAuthorizerRequestTypeRequest::default();
    event.type_ = Some("REQUEST".into());
    event.method_arn = Some(call.method_arn.clone());
    event.resource = Some(call.resource.to_owned());
    event.path = Some(call.path.clone());
    event.http_method = Some(call.method.clone());
    event.headers = last_values(&call.headers);
    event.multi_value_headers = call.headers.clone();
    event.query_string_parameters = last_query_values(&call.query).into();
    event.multi_value_query_string_parameters = all_query_values(&call.query).into();
    event.request_context = context;
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// The proxy integration event for `call`, carrying the authorizer's context.
fn proxy_event(
    call: &IncomingCall,
    decision: &ApiGatewayCustomAuthorizerResponse,
    body: Bytes,
) -> Value {
    let mut event = ApiGatewayProxyRequest::default();
    event.resource = Some(call.resource.to_owned());
    event.path = Some(call.path.clone());
    event.http_method = call.method.clone();
    event.headers = last_values(&call.headers);
    event.multi_value_headers = call.headers.clone();
    event.query_string_parameters = last_query_values(&call.query).into();
    event.multi_value_query_string_parameters = all_query_values(&call.query).into();
    event.request_context.resource_path = Some(call.resource.to_owned());
    event.request_context.http_method = call.method.clone();
    event.request_context.stage = Some(STAGE.into());
    event.request_context.request_id = Some(call.request_id.clone());
    event.request_context.apiid = Some(API_ID.into());
    event.request_context.identity.source_ip = Some(call.source_ip.clone());
    let mut fields: HashMap<String, Value> = decision
        .context
        .as_object()
        .map(|map| map.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    fields.insert("principalId".into(), json!(decision.principal_id));
    event.request_context.authorizer.fields = fields;
    if !body.is_empty() {
        event.body = Some(String::from_utf8_lossy(&body).into_owned());
    }
    serde_json::to_value(event).unwrap_or(Value::Null)
}

/// API Gateway's `headers`: one (the last) value per name.
fn last_values(headers: &HeaderMap) -> HeaderMap {
    let mut last = HeaderMap::new();
    for (name, value) in headers {
        last.insert(name.clone(), value.clone());
    }
    last
}

fn last_query_values(query: &[(String, String)]) -> HashMap<String, String> {
    query.iter().cloned().collect()
}

fn all_query_values(query: &[(String, String)]) -> HashMap<String, Vec<String>> {
    let mut all: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in query {
        all.entry(name.clone()).or_default().push(value.clone());
    }
    all
}

fn to_http(response: ApiGatewayProxyResponse) -> Response<Full<Bytes>> {
    let status = u16::try_from(response.status_code)
        .ok()
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match response.body {
        Some(Body::Text(text)) => Bytes::from(text),
        Some(Body::Binary(bytes)) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    let mut http_response = Response::new(Full::new(body));
    *http_response.status_mut() = status;
    for (name, value) in &response.headers {
        http_response
            .headers_mut()
            .insert(name.clone(), value.clone());
    }
    if !http_response.headers().contains_key("content-type") {
        http_response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
    }
    http_response
}
