//! An HTTP proxy in front of moto that injects AWS failures through real sockets: answer
//! with an error instead of forwarding, or forward (so moto acts) and then lose or replace
//! the response.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this AWS error without forwarding (moto never sees the call).
    Reject { status: u16, code: &'static str },
    /// Forward so moto acts, then close the connection without answering.
    DropResponse,
    /// Forward so moto acts, then answer 500 InternalFailure.
    FailAfterForward,
    /// Answer 200 with this body without forwarding: a stale read of eventually consistent
    /// state (IAM's ListAccessKeys just after CreateAccessKey, say).
    Respond { body: &'static str },
    /// Forward the first matching call and keep its answer; answer every later one with that
    /// same answer without forwarding: a listing that lags behind (ListSecrets "might not
    /// reflect changes from the last five minutes").
    ReplayFirst,
}

impl Fault {
    pub fn throttling_query() -> Self {
        Self::Reject {
            status: 400,
            code: "Throttling",
        }
    }
    pub fn throttling_json() -> Self {
        Self::Reject {
            status: 400,
            code: "ThrottlingException",
        }
    }
    /// IAM's answer to CreateAccessKey while the user still has two keys (a deletion not yet
    /// visible everywhere).
    pub fn key_limit_exceeded() -> Self {
        Self::Reject {
            status: 409,
            code: "LimitExceeded",
        }
    }
    /// ListAccessKeys as a replica that has not seen any key yet answers it.
    pub fn no_access_keys_yet() -> Self {
        Self::Respond {
            body: "<ListAccessKeysResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><ListAccessKeysResult><IsTruncated>false</IsTruncated><AccessKeyMetadata/></ListAccessKeysResult><ResponseMetadata><RequestId>keyrot-fault</RequestId></ResponseMetadata></ListAccessKeysResponse>",
        }
    }
    pub fn invalid_client_token() -> Self {
        Self::Reject {
            status: 403,
            code: "InvalidClientTokenId",
        }
    }
}

#[derive(Debug, Clone)]
enum Matcher {
    Operation(String),
    /// The n-th call (1-based) the proxy sees from now on, whatever it is.
    Ordinal(usize),
    /// A call of this operation whose request body contains this text (a user name, say).
    OperationWith(String, String),
}

#[derive(Debug, Clone)]
struct Rule {
    matcher: Matcher,
    fault: Fault,
    remaining: usize,
    /// The rule stops applying at this moment (`None`: only `remaining` counts).
    until: Option<std::time::Instant>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    calls: Vec<String>,
    /// When each call arrived (same order as `calls`).
    times: Vec<std::time::Instant>,
    bodies: Vec<(String, String)>,
    faults_applied: Vec<(String, Fault)>,
    ordinal_base: usize,
    /// The answers [`Fault::ReplayFirst`] replays, by operation.
    replays: std::collections::HashMap<String, (hyper::http::response::Parts, Bytes)>,
}

pub struct FaultProxy {
    url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let state = Arc::new(Mutex::new(State::default()));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let task_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = task_state.clone();
                let client = client.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, state.clone(), client.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, state, task }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Applies `fault` to the next `times` calls of `operation` (e.g. `CreateAccessKey`).
    pub fn inject(&self, operation: &str, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            matcher: Matcher::Operation(operation.to_owned()),
            fault,
            remaining: times,
            until: None,
        });
    }

    /// Applies `fault` to the next `times` calls of `operation` whose request body contains
    /// `text` (e.g. `UserName=alice`).
    pub fn inject_when(&self, operation: &str, text: &str, fault: Fault, times: usize) {
        self.lock().rules.push(Rule {
            matcher: Matcher::OperationWith(operation.to_owned(), text.to_owned()),
            fault,
            remaining: times,
            until: None,
        });
    }

    /// Applies `fault` to every call of `operation` whose request body contains `text`, for
    /// `period` from now (eventual consistency: a change not visible for a while).
    pub fn inject_for(
        &self,
        operation: &str,
        text: &str,
        fault: Fault,
        period: std::time::Duration,
    ) {
        self.lock().rules.push(Rule {
            matcher: Matcher::OperationWith(operation.to_owned(), text.to_owned()),
            fault,
            remaining: usize::MAX,
            until: Some(std::time::Instant::now() + period),
        });
    }

    /// Applies `fault` to the `n`-th call (1-based) counted from now.
    pub fn inject_at_call(&self, n: usize, fault: Fault) {
        let mut state = self.lock();
        let base = state.calls.len();
        state.ordinal_base = base;
        state.rules.push(Rule {
            matcher: Matcher::Ordinal(n),
            fault,
            remaining: 1,
            until: None,
        });
    }

    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    /// Operation names of every call seen, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Every call so far with the instant it arrived.
    pub fn timed_calls(&self) -> Vec<(std::time::Instant, String)> {
        let state = self.lock();
        state
            .times
            .iter()
            .copied()
            .zip(state.calls.iter().cloned())
            .collect()
    }

    /// Forgets the calls recorded so far (not the faults).
    pub fn forget_calls(&self) {
        let mut state = self.lock();
        state.calls.clear();
        state.times.clear();
        state.bodies.clear();
    }

    pub fn count(&self, operation: &str) -> usize {
        self.lock().calls.iter().filter(|c| *c == operation).count()
    }

    /// Request bodies of every call of `operation`, in order.
    pub fn bodies(&self, operation: &str) -> Vec<String> {
        self.lock()
            .bodies
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// The faults actually applied, with the operation each hit.
    pub fn faults_applied(&self) -> Vec<(String, Fault)> {
        self.lock().faults_applied.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type ProxyClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    client: ProxyClient,
    upstream: String,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let json_protocol = parts.headers.contains_key("x-amz-target");
    let operation = operation_name(&parts.method, parts.uri.path(), &parts.headers, &body);
    let fault = {
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        state.calls.push(operation.clone());
        state.times.push(std::time::Instant::now());
        state.bodies.push((
            operation.clone(),
            String::from_utf8_lossy(&body).into_owned(),
        ));
        let ordinal = state.calls.len() - state.ordinal_base;
        let hit = state.rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && rule
                    .until
                    .is_none_or(|until| std::time::Instant::now() < until)
                && match &rule.matcher {
                    Matcher::Operation(name) => *name == operation,
                    Matcher::Ordinal(n) => *n == ordinal,
                    Matcher::OperationWith(name, text) => {
                        *name == operation && String::from_utf8_lossy(&body).contains(text.as_str())
                    }
                }
        });
        let fault = hit.map(|rule| {
            rule.remaining -= 1;
            rule.fault.clone()
        });
        if let Some(fault) = &fault {
            state
                .faults_applied
                .push((operation.clone(), fault.clone()));
        }
        fault
    };
    if fault == Some(Fault::ReplayFirst) {
        let recorded = state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replays
            .get(&operation)
            .cloned();
        if let Some((parts, body)) = recorded {
            return Ok(Response::from_parts(parts, Full::new(body)));
        }
    }
    match fault {
        Some(Fault::Reject { status, code }) => return Ok(aws_error(status, code, json_protocol)),
        Some(Fault::Respond { body }) => {
            return Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "text/xml")
                .header("x-amzn-requestid", "keyrot-fault")
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .map_err(std::io::Error::other)
        }
        _ => {}
    }

    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut forward = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        forward = forward.header(name, value);
    }
    let forward = forward
        .body(Full::new(body))
        .map_err(std::io::Error::other)?;
    let response = client
        .request(forward)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    match fault {
        // Returning an error makes hyper close the connection without a response.
        Some(Fault::DropResponse) => Err(std::io::Error::other("fault: response dropped")),
        Some(Fault::FailAfterForward) => Ok(aws_error(500, "InternalFailure", json_protocol)),
        Some(Fault::ReplayFirst) => {
            state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .replays
                .insert(operation, (parts.clone(), body.clone()));
            Ok(Response::from_parts(parts, Full::new(body)))
        }
        _ => Ok(Response::from_parts(parts, Full::new(body))),
    }
}

/// `X-Amz-Target: secretsmanager.PutSecretValue` (JSON protocol), `Action=...` (query
/// protocol: IAM, STS), or the REST path of the few REST-JSON calls keyrot makes (SES v2).
fn operation_name(
    method: &hyper::Method,
    path: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> String {
    if method == hyper::Method::POST && path == "/v2/email/outbound-emails" {
        return "SendEmail".to_owned();
    }
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .unwrap_or("Unknown")
        .to_owned()
}

fn aws_error(status: u16, code: &str, json_protocol: bool) -> Response<Full<Bytes>> {
    let message = format!("injected by keyrot's fault proxy: {code}");
    let (content_type, body) = if json_protocol {
        (
            "application/x-amz-json-1.1",
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
        )
    } else {
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>keyrot-fault</RequestId></ErrorResponse>"
            ),
        )
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type)
        .header("x-amzn-requestid", "keyrot-fault")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
