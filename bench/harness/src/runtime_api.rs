//! A minimal Lambda Runtime API on loopback for one function process, so the harness can time
//! exactly what Lambda times: from process start to its first poll, and from handing out an
//! event to receiving its response.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

const PREFIX: &str = "/2018-06-01/runtime/";

/// What the function answered for one event, and when.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `false` when the function reported an error (`/invocation/{id}/error`).
    pub ok: bool,
    pub body: Bytes,
    /// When the function's poll received the event.
    pub delivered: Instant,
    /// When its response (or error) had arrived completely.
    pub answered: Instant,
}

struct Queued {
    event: Bytes,
    reply: oneshot::Sender<Answer>,
}

struct InFlight {
    delivered: Instant,
    reply: oneshot::Sender<Answer>,
}

struct State {
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, InFlight>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    answers: Mutex<Vec<Answer>>,
    next_id: AtomicU64,
    function_arn: String,
}

/// One function's Runtime API. Dropping it stops serving.
pub struct RuntimeApi {
    address: String,
    events: mpsc::UnboundedSender<Queued>,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("the function reported an init error: {0}")]
    Init(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the runtime API stopped")]
    Stopped,
}

impl RuntimeApi {
    pub async fn start(function: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?.to_string();
        let (events, receiver) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            events: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: Mutex::new(None),
            init_error: Mutex::new(None),
            answers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function}"),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        Ok(Self {
            address,
            events,
            state,
            server,
        })
    }

    /// `host:port`, the form Lambda gives in `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// When the function first asked for an event (its init was over).
    pub fn first_poll(&self) -> Option<Instant> {
        *lock(&self.state.first_poll)
    }

    /// Every answer so far, in order.
    pub fn answers(&self) -> Vec<Answer> {
        lock(&self.state.answers).clone()
    }

    /// Queues `event` and waits for the function's answer.
    pub async fn invoke(&self, event: Bytes, timeout: Duration) -> Result<Answer, InvokeError> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Queued { event, reply })
            .map_err(|_| InvokeError::Stopped)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut answer = answer;
        loop {
            tokio::select! {
                result = &mut answer => return result.map_err(|_| InvokeError::Stopped),
                () = tokio::time::sleep_until(deadline) => return Err(InvokeError::Timeout(timeout)),
                () = tokio::time::sleep(Duration::from_millis(50)) => {
                    if let Some(message) = lock(&self.state.init_error).clone() {
                        return Err(InvokeError::Init(message));
                    }
                }
            }
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(request, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

async fn handle(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let arrived = Instant::now();
    let Some(route) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new()));
    };
    let accepted = || reply(StatusCode::ACCEPTED, Bytes::from_static(b"{}"));
    match (method, route.split('/').collect::<Vec<_>>().as_slice()) {
        (Method::GET, ["invocation", "next"]) => Ok(next_event(&state).await),
        (Method::POST, ["invocation", id, outcome @ ("response" | "error")]) => {
            let in_flight = lock(&state.in_flight).remove(*id);
            if let Some(in_flight) = in_flight {
                let answer = Answer {
                    ok: *outcome == "response",
                    body,
                    delivered: in_flight.delivered,
                    answered: arrived,
                };
                lock(&state.answers).push(answer.clone());
                let _ = in_flight.reply.send(answer);
            }
            Ok(accepted())
        }
        (Method::POST, ["init", "error"]) => {
            *lock(&state.init_error) = Some(String::from_utf8_lossy(&body).into_owned());
            Ok(accepted())
        }
        _ => Ok(reply(StatusCode::NOT_FOUND, Bytes::new())),
    }
}

async fn next_event(state: &State) -> Response<Full<Bytes>> {
    lock(&state.first_poll).get_or_insert_with(Instant::now);
    let queued = state.events.lock().await.recv().await;
    let Some(Queued {
        event,
        reply: sender,
    }) = queued
    else {
        return reply(StatusCode::GONE, Bytes::new());
    };
    let delivered = Instant::now();
    let id = format!("bench-{:08}", state.next_id.fetch_add(1, Ordering::Relaxed));
    lock(&state.in_flight).insert(
        id.clone(),
        InFlight {
            delivered,
            reply: sender,
        },
    );
    let deadline = SystemTime::now()
        .checked_add(Duration::from_secs(900))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut response = reply(StatusCode::OK, event);
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", id);
    set("lambda-runtime-deadline-ms", deadline.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        state.function_arn.clone(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
    );
    set("content-type", "application/json".into());
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One HTTP/1.1 exchange on a fresh connection; returns the raw response.
    async fn exchange(address: &str, request: String) -> String {
        let mut stream = TcpStream::connect(address).await.expect("connect");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn hands_out_the_event_and_times_the_answer() {
        let api = RuntimeApi::start("f").await.expect("start");
        let address = api.address().to_owned();
        let invocation = tokio::spawn({
            let api = std::sync::Arc::new(api);
            let handle = api.clone();
            async move {
                let answer = handle
                    .invoke(Bytes::from_static(b"{\"n\":1}"), Duration::from_secs(10))
                    .await;
                (answer, api)
            }
        });
        let next = exchange(
            &address,
            "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".into(),
        )
        .await;
        assert!(next.starts_with("HTTP/1.1 200"), "{next}");
        assert!(next.ends_with("{\"n\":1}"), "{next}");
        let id = next
            .lines()
            .find_map(|l| l.strip_prefix("lambda-runtime-aws-request-id: "))
            .expect("request id")
            .trim()
            .to_owned();
        let body = "{\"ok\":true}";
        let posted = exchange(
            &address,
            format!("POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len()),
        )
        .await;
        assert!(posted.starts_with("HTTP/1.1 202"), "{posted}");
        let (answer, api) = invocation.await.expect("join");
        let answer = answer.expect("answer");
        assert!(answer.ok);
        assert_eq!(&answer.body[..], body.as_bytes());
        assert!(answer.answered >= answer.delivered);
        assert!(api.first_poll().expect("polled") <= answer.delivered);
        assert_eq!(api.answers().len(), 1);
    }

    #[tokio::test]
    async fn an_init_error_ends_the_wait() {
        let api = RuntimeApi::start("f").await.expect("start");
        let body = "{\"errorType\":\"Boom\"}";
        exchange(
            api.address(),
            format!("POST /2018-06-01/runtime/init/error HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len()),
        )
        .await;
        let result = api.invoke(Bytes::new(), Duration::from_secs(10)).await;
        assert!(matches!(result, Err(InvokeError::Init(message)) if message.contains("Boom")));
    }
}
