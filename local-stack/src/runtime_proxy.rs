//! A Lambda Runtime API proxy in front of each function process, so that a deploy can retire
//! the old processes as Lambda retires old instances: each finishes the invocation it holds
//! and takes no new one. Killing a process outright could lose an invocation the emulator had
//! already handed to it, and its caller would wait for an answer that never comes.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// What one function process is doing, as its Runtime API calls show it.
#[derive(Default)]
struct Activity {
    /// No new `/next` goes to the emulator: the process is being retired.
    draining: AtomicBool,
    /// `/next` calls forwarded and not yet answered: the emulator may still hand them an
    /// invocation.
    polling: AtomicUsize,
    /// Invocations handed to the process and not yet answered.
    serving: AtomicUsize,
    changed: Notify,
}

impl Activity {
    fn idle(&self) -> bool {
        self.polling.load(Ordering::SeqCst) == 0 && self.serving.load(Ordering::SeqCst) == 0
    }
}

pub struct RuntimeProxy {
    /// `127.0.0.1:<port>`, to stand for the emulator's address in `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    activity: Arc<Activity>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Upstream = Client<HttpConnector, Full<Bytes>>;

impl RuntimeProxy {
    /// Listens on a free loopback port and forwards to the emulator at `upstream`
    /// (`http://127.0.0.1:<port>`).
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let activity = Arc::new(Activity::default());
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let served = activity.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (activity, client, upstream) =
                    (served.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        forward(request, activity.clone(), client.clone(), upstream.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            activity,
            task,
        })
    }

    /// Stops handing the process new invocations and waits until it holds none (or until
    /// `patience` runs out: a function nobody invokes keeps a `/next` waiting forever).
    /// Whether it drained.
    pub async fn drain(&self, patience: Duration) -> bool {
        self.activity.draining.store(true, Ordering::SeqCst);
        let drained = async {
            loop {
                let changed = self.activity.changed.notified();
                if self.activity.idle() {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(patience, drained).await.is_ok()
    }
}

async fn forward(
    request: Request<Incoming>,
    activity: Arc<Activity>,
    client: Upstream,
    upstream: String,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let asks_for_work = path.ends_with("/invocation/next");
    let answers_work =
        path.contains("/invocation/") && (path.ends_with("/response") || path.ends_with("/error"));
    if asks_for_work {
        if activity.draining.load(Ordering::SeqCst) {
            // A retiring instance gets nothing more; it is stopped once idle.
            std::future::pending::<()>().await;
        }
        activity.polling.fetch_add(1, Ordering::SeqCst);
    }
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let mut upstream_request = Request::builder()
        .method(parts.method)
        .uri(format!("{upstream}{path}"));
    for (name, value) in &parts.headers {
        if name != hyper::header::HOST {
            upstream_request = upstream_request.header(name, value);
        }
    }
    let result = async {
        let upstream_request = upstream_request
            .body(Full::new(body))
            .map_err(std::io::Error::other)?;
        let response = client
            .request(upstream_request)
            .await
            .map_err(std::io::Error::other)?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok::<_, std::io::Error>(Response::from_parts(parts, Full::new(body)))
    }
    .await;
    if asks_for_work {
        if result
            .as_ref()
            .is_ok_and(|response| response.status().is_success())
        {
            activity.serving.fetch_add(1, Ordering::SeqCst);
        }
        activity.polling.fetch_sub(1, Ordering::SeqCst);
    } else if answers_work {
        // Saturating: an answer for an invocation handed out before this proxy counted.
        let _ = activity
            .serving
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
    activity.changed.notify_waiters();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// An emulator that hands out an invocation at every `/next` and counts them.
    async fn emulator(nexts: Arc<AtomicUsize>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let nexts = nexts.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let nexts = nexts.clone();
                        async move {
                            if request.uri().path().ends_with("/next") {
                                nexts.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from("{}"))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        url
    }

    async fn call(proxy: &RuntimeProxy, method: &str, path: &str) -> u16 {
        let client: Upstream = Client::builder(TokioExecutor::new()).build_http();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", proxy.address))
            .body(Full::new(Bytes::new()))
            .expect("request");
        client
            .request(request)
            .await
            .expect("answer")
            .status()
            .as_u16()
    }

    const NEXT: &str = "/.rt/f/2018-06-01/runtime/invocation/next";

    #[tokio::test]
    async fn a_draining_process_finishes_its_invocation_and_gets_no_other() {
        let nexts = Arc::new(AtomicUsize::new(0));
        let proxy = RuntimeProxy::start(&emulator(nexts.clone()).await)
            .await
            .expect("proxy");
        assert_eq!(call(&proxy, "GET", NEXT).await, 200);
        // Serving one invocation: not drained until it is answered.
        assert!(!proxy.drain(Duration::from_millis(200)).await);
        let answer = "/.rt/f/2018-06-01/runtime/invocation/1/response";
        assert_eq!(call(&proxy, "POST", answer).await, 200);
        assert!(proxy.drain(Duration::from_millis(200)).await);
        // Its next poll is held here: the emulator never sees it.
        let held = tokio::time::timeout(Duration::from_millis(300), call(&proxy, "GET", NEXT));
        assert!(held.await.is_err(), "a retiring process got new work");
        assert_eq!(nexts.load(Ordering::SeqCst), 1);
    }
}
