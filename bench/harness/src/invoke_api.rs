//! The Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`) in front of the
//! harness's Runtime APIs, so Secrets Manager (moto) can invoke whichever rotation-fn process
//! the harness is measuring. A function error answers 500, as cargo-lambda's emulator does.

use crate::runtime_api::RuntimeApi;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Longest a rotation step may take (the template's function timeout).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

type Functions = Arc<Mutex<HashMap<String, Arc<RuntimeApi>>>>;

pub struct InvokeApi {
    url: String,
    functions: Functions,
    server: tokio::task::JoinHandle<()>,
}

impl InvokeApi {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let functions: Functions = Arc::default();
        let server = tokio::spawn(serve(listener, functions.clone()));
        Ok(Self {
            url,
            functions,
            server,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// From now on, invocations of `name` go to `runtime`.
    pub fn route(&self, name: &str, runtime: Arc<RuntimeApi>) {
        self.functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), runtime);
    }
}

impl Drop for InvokeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, functions: Functions) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let functions = functions.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| handle(request, functions.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

async fn handle(
    request: Request<Incoming>,
    functions: Functions,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let name = request
        .uri()
        .path()
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(str::to_owned);
    let is_post = request.method() == Method::POST;
    let event = request
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let Some(name) = name.filter(|_| is_post) else {
        return Ok(reply(StatusCode::NOT_FOUND, "not an Invoke API call"));
    };
    let runtime = functions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&name)
        .cloned();
    let Some(runtime) = runtime else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            format!("no function {name} is running"),
        ));
    };
    Ok(match runtime.invoke(event, STEP_TIMEOUT).await {
        Ok(answer) if answer.ok => reply(StatusCode::OK, answer.body),
        Ok(answer) => reply(StatusCode::INTERNAL_SERVER_ERROR, answer.body),
        Err(error) => reply(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    })
}
